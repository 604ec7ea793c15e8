"""``bapps judge``: collect human 2AFC / JND judgments in a browser.

Actions: create, serve, add-rater, link, admin-token, status, export, simulate.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from ._parser import examples

SETTINGS = ("judgments_per_item", "items_per_rater", "sentinel_share", "seed", "break_every",
            "display_px", "scaling", "jnd_ref_ms", "jnd_blank_ms", "jnd_dist_ms", "instructions",
            "reassign_after_s", "assignment", "target_width", "credible_level", "prior", "disagreement_weight",
            "platform", "completion_code", "completion_url", "redirect_after_s", "min_sentinel_accuracy",
            "min_sentinel_failures", "screen_out", "screened_code")


def _study_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("study settings (only when the database is created)")
    g.add_argument("--judgments-per-item", type=int, help="raters wanted per item; with --assignment adaptive "
                   "the most an item gets (default 5)")
    g.add_argument("--items-per-rater", type=int, help="items per rater, 0 = all (default 0)")
    g.add_argument("--sentinel-share", type=float, help="share of catch trials (default 0.1)")
    g.add_argument("--seed", type=int, help="seed of orders, swaps and sentinels (default 0)")
    g.add_argument("--break-every", type=int, help="break screen every N trials (default 50)")
    g.add_argument("--display-px", type=int, help="displayed image side in CSS px (default 256)")
    g.add_argument("--scaling", choices=("nearest", "bilinear"), help="browser scaling (default nearest)")
    g.add_argument("--jnd-ref-ms", type=int, help="JND first image duration (default 1000)")
    g.add_argument("--jnd-blank-ms", type=int, help="JND blank duration (default 250)")
    g.add_argument("--jnd-dist-ms", type=int, help="JND second image duration (default 1000)")
    g.add_argument("--instructions", help="instructions text shown before the first trial")
    g.add_argument("--reassign-after-s", type=float, help="a rater idle this long (no answer) has "
                   "their unanswered items offered to other raters, who may push an item past the "
                   "wanted count if the idle rater returns; 0 = never (default 900)")
    a = p.add_argument_group("adaptive assignment (docs/guides/studies.md)")
    a.add_argument("--assignment", choices=("balanced", "adaptive"), help="balanced: every item gets "
                   "--judgments-per-item raters; adaptive: raters go to the items whose Beta posterior is "
                   "widest, and an item stops once its credible interval is narrower than --target-width "
                   "(default balanced)")
    a.add_argument("--target-width", type=float, help="adaptive: credible-interval width at which an item "
                   "stops receiving raters (default 0.3)")
    a.add_argument("--credible-level", type=float, help="adaptive: level of the central credible interval "
                   "(default 0.9)")
    a.add_argument("--prior", type=float, nargs=2, metavar=("A", "B"), help="adaptive: Beta(A, B) prior of "
                   "the judge fraction (default 1 1, uniform; 0.5 0.5 is Jeffreys)")
    a.add_argument("--disagreement-weight", type=float, help="adaptive: width x (1 + W x metric disagreement) "
                   "ranks the items when --distances is given (default 1)")
    c = p.add_argument_group("crowd platform and screening (docs/guides/studies.md)")
    c.add_argument("--platform", choices=("none", "generic", "prolific"), help="raters arrive through a "
                   "signed study link (bapps judge link) with their platform id (default none: /?rater=ID)")
    c.add_argument("--completion-code", help="code shown on completion (default: a random one)")
    c.add_argument("--completion-url", help="where raters are sent on completion, {code} replaced by the "
                   "code (default for prolific: https://app.prolific.com/submissions/complete?cc={code})")
    c.add_argument("--redirect-after-s", type=int, help="seconds the code is shown before the redirect "
                   "(default 5; 0 = at once)")
    c.add_argument("--min-sentinel-accuracy", type=float, help="raters below this sentinel accuracy who also "
                   "failed --min-sentinel-failures sentinels are screened out (default: no screening)")
    c.add_argument("--min-sentinel-failures", type=int, help="failed sentinels needed to screen out (default 2)")
    c.add_argument("--screen-out", choices=("code", "return"), help="screened-out raters get a second "
                   "completion code (code) or are asked to return their submission (return) (default code)")
    c.add_argument("--screened-code", help="completion code of screened-out raters (default: a random one)")


def _settings(args: argparse.Namespace) -> dict[str, object]:
    return {k: getattr(args, k) for k in SETTINGS if getattr(args, k, None) is not None}


def _add_create_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = sub.add_parser("create", help="create a study database from an unjudged SET",
        description=(
        "Create the SQLite study database --db from SET (an unjudged BAPPS folder, packed .h5 or CSV manifest): "
        "its items, the study settings below (assignment policy, platform), and the order in which raters "
        "see them."), epilog=examples(
        "bapps judge create unjudged --db study.sqlite",
        "bapps judge create items.csv --db study.sqlite --judgments-per-item 3 --sentinel-share 0.2",
        "bapps judge create unjudged --db study.sqlite --assignment adaptive --items-per-rater 40 "
        "--judgments-per-item 30 --platform prolific --min-sentinel-accuracy 0.75"))
    c.add_argument("set", metavar="SET", help="unjudged BAPPS folder, packed .h5 or CSV manifest")
    c.add_argument("--db", required=True, help="study database to create (SQLite)")
    c.add_argument("--distances", help="per-item metric distances (.csv/.npz, as bapps evaluate "
                   "--save-distances writes) whose disagreement weights adaptive assignment")
    _study_options(c)
    c.set_defaults(func=run_create)
    s = sub.add_parser("serve", help="serve the study page (creates the database from SET if missing)",
                       description="Serve the judging page of --db on --host:--port until interrupted "
                                   "(creating --db from SET first if it does not exist). Raters open "
                                   "/?rater=ID (and &token=T when added with add-rater).",
                       epilog=examples("bapps judge serve --db study.sqlite",
                                       "bapps judge serve unjudged --db study.sqlite --host 0.0.0.0 --port 8000",
                                       "bapps judge serve items.csv --db study.sqlite --reassign-after-s 600"))
    s.add_argument("set", metavar="SET", nargs="?", help="unjudged set (needed only to create --db)")
    s.add_argument("--db", required=True, help="study database (SQLite)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; other "
                   "addresses admit only raters added with add-rater or arriving through the study link)")
    s.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    s.add_argument("--threads", type=int, default=8, help="server threads (default 8)")
    s.add_argument("--allowed-host", action="append", default=[], metavar="NAME[:PORT]",
                   help="a further host name raters' browsers reach the server by (a proxy's public name; "
                        "repeatable); without PORT any port. Requests whose Host or Origin names another "
                        "host are refused (default: only the bound address and, on loopback, localhost)")
    s.add_argument("--new-raters-per-minute", type=int, default=60, metavar="N",
                   help="record at most N new raters (without a token, or arriving through the study link) "
                        "per minute; others are asked to retry (default 60, 0 = no cap)")
    _study_options(s)
    s.set_defaults(func=run_serve)


def _add_admin(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = sub.add_parser("add-rater", help="register a rater and print their token",
                       description="Register RATER in --db and print their secret token and URL; a server bound "
                                   "to an address other than loopback admits only raters added this way.",
                       epilog=examples("bapps judge add-rater alice --db study.sqlite"))
    a.add_argument("rater", help="rater id")
    a.add_argument("--db", required=True, help="study database (SQLite)")
    a.set_defaults(func=run_add_rater)
    lk = sub.add_parser("link", help="print the study link to paste into the crowd platform, and the codes",
        description=(
        "Print the signed study link of --db for the crowd platform (Prolific or a generic ?rater= template) "
        "and the completion codes; a link not issued for the study is refused by the server."),
                        epilog=examples("bapps judge link --db study.sqlite --base-url https://study.example.org/",
                                        "bapps judge link --db study.sqlite --placeholder '${workerId}'"))
    lk.add_argument("--db", required=True, help="study database (SQLite)")
    lk.add_argument("--base-url", default="http://127.0.0.1:8765/", metavar="URL", help="the address raters reach the "
                    "server by (default http://127.0.0.1:8765/)")
    lk.add_argument("--placeholder", default="{{RATER_ID}}", help="generic platform: what goes after rater= "
                    "(the platform's own placeholder for the participant id)")
    lk.set_defaults(func=run_link)
    t = sub.add_parser("admin-token", help="issue a new admin token for the dashboard (the old one stops working)",
        description=(
        "Issue a new admin token for the study dashboard (/admin) of --db and print it once; it is stored "
        "hashed and the previous token stops working."),
                       epilog=examples("bapps judge admin-token --db study.sqlite"))
    t.add_argument("--db", required=True, help="study database (SQLite)")
    t.set_defaults(func=run_admin_token)
    st = sub.add_parser("status", help="the study's progress in a few lines (what the dashboard shows)",
        description=(
        "Print the progress of the study in --db in a few lines, as the dashboard shows it; with --items, "
        "per rater and per item."),
                        epilog=examples("bapps judge status --db study.sqlite",
                                        "bapps judge status --db study.sqlite --items"))
    st.add_argument("--db", required=True, help="study database (SQLite)")
    st.add_argument("--items", action="store_true", help="also one line per rater and per item")
    st.set_defaults(func=run_status)


def _add_export_simulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    e = sub.add_parser("export", help="export judgments as a data set",
        description=(
        "Write the judgments of --db to --out as a data set (atomically): the BAPPS layout that 'bapps pack' "
        "and 'bapps evaluate' read, or a CSV manifest; optionally without raters whose sentinel accuracy is "
        "low."), epilog=examples(
        "bapps judge export --db study.sqlite --out judged",
        "bapps judge export --db study.sqlite --out judged-csv --format csv --min-sentinel-accuracy 0.8"))
    e.add_argument("--db", required=True, help="study database (SQLite)")
    e.add_argument("--out", required=True, help="output folder (written atomically)")
    e.add_argument("--format", choices=("bapps", "csv"), default="bapps", help="BAPPS layout or CSV manifest")
    e.add_argument("--min-sentinel-accuracy", type=float, default=None,
                   help="drop raters whose sentinel accuracy is below this (0..1)")
    e.add_argument("--force", action="store_true", help="replace an existing output folder")
    e.set_defaults(func=run_export)
    m = sub.add_parser("simulate", help="compare balanced and adaptive assignment with the mini set's simulated "
                       "observer (synthetic raters)", description=(
        "Run simulated studies on the mini set with its simulated observer as raters (synthetic), once with "
        "balanced and once with adaptive assignment per seed and target width, and print the answers each "
        "policy needed for the same per-item error."), epilog=examples(
                           "bapps judge simulate mini --seeds 0 1 2 3 4",
                           "bapps judge simulate mini --items 200 --target-width 0.2 0.3 0.4 --judgments-per-item 60"))
    m.add_argument("set", metavar="SET", help="the mini set (bapps make-mini) or another set with images")
    m.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="simulation seeds (default 0-4)")
    m.add_argument("--items", type=int, default=300, help="items per simulated study (default 300)")
    m.add_argument("--items-per-rater", type=int, default=20, help="items per rater (default 20)")
    m.add_argument("--judgments-per-item", type=int, default=40, help="most answers per item (default 40)")
    m.add_argument("--target-width", type=float, nargs="+", default=[0.3], help="adaptive: stopping width(s) "
                   "to try (default 0.3)")
    m.add_argument("--credible-level", type=float, default=0.9, help="adaptive: interval level (default 0.9)")
    m.add_argument("--concurrent", type=int, default=10, help="raters answering at once (default 10)")
    m.set_defaults(func=run_simulate)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``bapps judge`` sub-command to ``subparsers``.

    Args:
        subparsers: the sub-command action of the ``bapps`` parser.

    Returns:
        The sub-command's parser (``func`` set to the function that runs it).
    """
    p = subparsers.add_parser("judge", help="collect human 2AFC/JND judgments in a browser",
                              description="Run a BAPPS-protocol judgment study: a local web page, an "
                                          "SQLite database, export to the BAPPS layout.",
                              epilog=examples("bapps judge create unjudged --db study.sqlite",
                                              "bapps judge serve --db study.sqlite --port 8765",
                                              "bapps judge export --db study.sqlite --out judged"))
    sub = p.add_subparsers(dest="judge_command", metavar="ACTION", required=True)
    _add_create_serve(sub)
    _add_admin(sub)
    _add_export_simulate(sub)
    return p


def run_create(args: argparse.Namespace) -> int:
    """Create the study database from ``args.set`` and print its first admin token.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..judge import create_from_set
    from ..judge.manage import new_admin_token
    db = create_from_set(args.set, args.db, distances=args.distances, **_settings(args))
    token = new_admin_token(db)
    print(f"created study {db}\nadmin token (shown once; `bapps judge admin-token` issues a new one): {token}\n"
          f"dashboard: /admin#token={token}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Serve the study page of ``args.db`` until interrupted (creating the database first if missing).

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..judge.app import serve
    from ..judge.transport import served_port

    def ready(server: Any) -> None:
        print(f"bapps judge: serving {args.db} on http://{args.host}:{served_port(server)}/?rater=ID "
              "(dashboard: /admin)", flush=True)

    serve(args.db, args.set, host=args.host, port=args.port, threads=args.threads, on_ready=ready,
          settings=_settings(args), allowed_hosts=args.allowed_host,
          new_raters_per_minute=args.new_raters_per_minute)
    return 0


def run_add_rater(args: argparse.Namespace) -> int:
    """Register ``args.rater`` in the study and print their token and URL.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..judge import add_rater
    token = add_rater(args.db, args.rater)
    print(f"rater {args.rater}: token {token}\nURL: /?rater={args.rater}&token={token}")
    return 0


def run_link(args: argparse.Namespace) -> int:
    """Print the study link for the crowd platform and the completion codes.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..judge.manage import study_link_info
    print(study_link_info(args.db, args.base_url, args.placeholder))
    return 0


def run_admin_token(args: argparse.Namespace) -> int:
    """Issue a new admin token for the dashboard and print it once.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..judge.manage import new_admin_token
    token = new_admin_token(args.db)
    print(f"admin token (shown once; the previous one no longer works): {token}\ndashboard: /admin#token={token}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print the study's progress (per rater and per item with ``--items``).

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..judge import status_text
    from ..judge.manage import status_summary
    print(status_summary(args.db))
    if args.items:
        print("\n" + status_text(args.db))
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Export the judgments as a data set and print the export summary as JSON.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..judge import export
    summary = export(args.db, args.out, fmt=args.format, min_sentinel_accuracy=args.min_sentinel_accuracy,
                     force=args.force)
    print(json.dumps(summary, indent=2))
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    """Compare balanced and adaptive assignment in simulated studies and print the table.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..judge.simulate import compare, comparison_table
    settings = {"items_per_rater": args.items_per_rater, "judgments_per_item": args.judgments_per_item,
                "credible_level": args.credible_level}
    rows = compare(args.set, args.seeds, n_items=args.items, widths=tuple(args.target_width), settings=settings,
                   concurrent=args.concurrent)
    print(f"{args.items} items per study, {args.items_per_rater} per rater, at most {args.judgments_per_item} "
          f"answers per item, 10% sentinels, {args.concurrent} raters at once; adaptive: credible level "
          f"{args.credible_level}, prior Beta(1, 1); seeds {' '.join(map(str, args.seeds))}")
    print(comparison_table(rows))
    return 0
