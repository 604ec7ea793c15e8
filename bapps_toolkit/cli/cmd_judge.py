"""``bapps judge``: collect human 2AFC / JND judgments in a browser (create, serve, add-rater,
status, export)."""
from __future__ import annotations

import argparse
import json
from typing import Any

from ._parser import examples

SETTINGS = ("judgments_per_item", "items_per_rater", "sentinel_share", "seed", "break_every",
            "display_px", "scaling", "jnd_ref_ms", "jnd_blank_ms", "jnd_dist_ms", "instructions",
            "reassign_after_s")


def _study_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("study settings (only when the database is created)")
    g.add_argument("--judgments-per-item", type=int, help="raters wanted per item (default 5)")
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


def _settings(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("judge", help="collect human 2AFC/JND judgments in a browser",
                              description="Run a BAPPS-protocol judgment study: a local web page, an "
                                          "SQLite database, export to the BAPPS layout.",
                              epilog=examples("bapps judge create unjudged --db study.sqlite",
                                              "bapps judge serve --db study.sqlite --port 8765",
                                              "bapps judge export --db study.sqlite --out judged"))
    sub = p.add_subparsers(dest="judge_command", metavar="ACTION", required=True)
    c = sub.add_parser("create", help="create a study database from an unjudged SET", description=(
        "Create the SQLite study database --db from SET (an unjudged BAPPS folder, packed .h5 or CSV manifest): "
        "its items, the study settings below, and the order in which raters see them."),
        epilog=examples(
        "bapps judge create unjudged --db study.sqlite",
        "bapps judge create items.csv --db study.sqlite --judgments-per-item 3 --sentinel-share 0.2"))
    c.add_argument("set", metavar="SET", help="unjudged BAPPS folder, packed .h5 or CSV manifest")
    c.add_argument("--db", required=True, help="study database to create (SQLite)")
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
                   "addresses admit only raters added with add-rater)")
    s.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    s.add_argument("--threads", type=int, default=8, help="server threads (default 8)")
    s.add_argument("--allowed-host", action="append", default=[], metavar="NAME[:PORT]",
                   help="a further host name raters' browsers reach the server by (a proxy's public name; "
                        "repeatable); without PORT any port. Requests whose Host or Origin names another "
                        "host are refused (default: only the bound address and, on loopback, localhost)")
    s.add_argument("--new-raters-per-minute", type=int, default=60, metavar="N",
                   help="record at most N new raters (without a token) per minute; others are asked to "
                        "retry (default 60, 0 = no cap)")
    _study_options(s)
    s.set_defaults(func=run_serve)
    a = sub.add_parser("add-rater", help="register a rater and print their token",
                       description="Register RATER in --db and print their secret token and URL; a server bound "
                                   "to an address other than loopback admits only raters added this way.",
                       epilog=examples("bapps judge add-rater alice --db study.sqlite"))
    a.add_argument("rater", help="rater id")
    a.add_argument("--db", required=True, help="study database (SQLite)")
    a.set_defaults(func=run_add_rater)
    st = sub.add_parser("status", help="progress per rater and per item",
                        description="Print the progress of the study in --db: per rater, answered of "
                                    "assigned items and sentinels (catch trials) answered right; per item, "
                                    "answers of the wanted judgments.",
                        epilog=examples("bapps judge status --db study.sqlite"))
    st.add_argument("--db", required=True, help="study database (SQLite)")
    st.set_defaults(func=run_status)
    e = sub.add_parser("export", help="export judgments as a data set", description=(
        "Write the judgments of --db to --out as a data set (atomically): the BAPPS layout that 'bapps pack' "
        "and 'bapps evaluate' read, or a CSV manifest; optionally without raters whose sentinel accuracy is low."),
        epilog=examples(
        "bapps judge export --db study.sqlite --out judged",
        "bapps judge export --db study.sqlite --out judged-csv --format csv --min-sentinel-accuracy 0.8"))
    e.add_argument("--db", required=True, help="study database (SQLite)")
    e.add_argument("--out", required=True, help="output folder (written atomically)")
    e.add_argument("--format", choices=("bapps", "csv"), default="bapps", help="BAPPS layout or CSV manifest")
    e.add_argument("--min-sentinel-accuracy", type=float, default=None,
                   help="drop raters whose sentinel accuracy is below this (0..1)")
    e.add_argument("--force", action="store_true", help="replace an existing output folder")
    e.set_defaults(func=run_export)
    return p


def run_create(args: argparse.Namespace) -> int:
    from ..judge import create_from_set
    print(f"created study {create_from_set(args.set, args.db, **_settings(args))}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from ..judge.app import serve
    from ..judge.transport import served_port

    def ready(server) -> None:
        print(f"bapps judge: serving {args.db} on http://{args.host}:{served_port(server)}/?rater=ID", flush=True)

    serve(args.db, args.set, host=args.host, port=args.port, threads=args.threads, on_ready=ready,
          settings=_settings(args), allowed_hosts=args.allowed_host,
          new_raters_per_minute=args.new_raters_per_minute)
    return 0


def run_add_rater(args: argparse.Namespace) -> int:
    from ..judge import add_rater
    token = add_rater(args.db, args.rater)
    print(f"rater {args.rater}: token {token}\nURL: /?rater={args.rater}&token={token}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from ..judge import status_text
    print(status_text(args.db))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..judge import export
    summary = export(args.db, args.out, fmt=args.format, min_sentinel_accuracy=args.min_sentinel_accuracy,
                     force=args.force)
    print(json.dumps(summary, indent=2))
    return 0
