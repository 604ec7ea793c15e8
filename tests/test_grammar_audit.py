"""One grammar for every ``bapps`` command, audited over the whole parser (every sub-command,
nested ones included): each has a description and examples; an option that several commands
share is declared alike (same nargs, metavar and choices) unless it is listed below with the
reason its meaning differs; no option takes a comma-separated list; lists are space-separated;
and an argument error prints the usage of the sub-command it belongs to."""
from __future__ import annotations

import argparse
from collections import defaultdict

import pytest
from cli_tree import command_tree

from bapps_toolkit.cli._options import BACKBONE_METAVAR, PRECISIONS
from bapps_toolkit.cli.main import build_parser, main

#: Options whose meaning differs between commands by design, and why.
DIFFERENT_MEANING = {
    "--out": "a CSV file (evaluate), a CSV or .npy file (score), a folder (train, demo, judge export, mad, gmad, "
             "loss-study, competition-report): the metavar says which",
    "--format": "the benchmark a folder holds (evaluate, pack), the export format (judge export), the image "
                "list format (gmad)",
    "--target-width": "one stopping width of a study (judge create, serve), or the widths a simulation compares "
                      "(judge simulate)",
    "--items": "a flag for the per-item table (judge status), or how many items a simulated study has "
               "(judge simulate)",
}
#: Options every command that has them must declare exactly so.
GRAMMAR = {
    "--metrics": ("+", "NAME", None),
    "--metric-option": (None, "NAME.KEY=VALUE", None),
    "--backbone-weights": ("+", BACKBONE_METAVAR, None),
    "--precision": (None, None, PRECISIONS),
}


PARSER = build_parser()
COMMANDS = dict(command_tree(PARSER))


def _shape(action: argparse.Action) -> tuple:
    return action.nargs, action.metavar, tuple(action.choices) if action.choices else None


def _declarations() -> dict[str, list[tuple[str, tuple]]]:
    found: dict[str, list[tuple[str, tuple]]] = defaultdict(list)
    for path, parser in COMMANDS.items():
        for a in parser._actions:
            for flag in a.option_strings:
                if flag.startswith("--") and flag != "--help":
                    found[flag].append((" ".join(path), _shape(a)))
    return found


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_command_has_a_description_and_examples(path):
    parser = COMMANDS[path]
    assert parser.description and len(parser.description.split()) >= 5, f"bapps {' '.join(path)}: no description"
    assert parser.epilog and "examples:" in parser.epilog, f"bapps {' '.join(path)}: no examples"


def test_shared_options_are_declared_alike():
    differ = {flag: uses for flag, uses in _declarations().items()
              if len({shape for _, shape in uses}) > 1 and flag not in DIFFERENT_MEANING}
    assert not differ, "options declared differently across commands: " + "; ".join(
        f"{flag}: " + ", ".join(f"{cmd} {shape}" for cmd, shape in uses) for flag, uses in differ.items())


def test_the_grammar_options_have_their_one_form():
    decl = _declarations()
    for flag, shape in GRAMMAR.items():
        assert decl[flag], f"no command has {flag}"
        for cmd, got in decl[flag]:
            assert got == shape, f"bapps {cmd} {flag}: {got}, expected {shape}"
    assert {cmd for cmd, _ in decl["--metrics"]} >= {"evaluate", "score"}
    assert {cmd for cmd, _ in decl["--precision"]} >= {"evaluate", "score", "train"}
    assert {cmd for cmd, _ in decl["--backbone-weights"]} >= {"evaluate", "score", "train", "loss-study", "demo"}
    assert {cmd for cmd, _ in decl["--metric-option"]} >= {"evaluate", "score"}


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_no_option_takes_a_comma_list(path):
    for a in COMMANDS[path]._actions:
        words = (a.help or "").lower()
        assert "comma-separated" not in words and "comma separated" not in words, \
            f"bapps {' '.join(path)} {'/'.join(a.option_strings)}: a comma list ({a.help})"
        if a.option_strings and isinstance(a.metavar, str):
            assert "," not in a.metavar, f"bapps {' '.join(path)} {a.option_strings[0]}: metavar {a.metavar}"


def test_verify_names_its_input_data():
    assert "DATA.h5" in COMMANDS[("verify",)].format_usage()


def test_train_variant_lists_its_choices():
    assert "{lin,tune,scratch}" in COMMANDS[("train",)].format_help()


@pytest.mark.parametrize("argv, usage", [
    (["score", "a.png", "b.png", "--nope"], "usage: bapps score"),
    (["evaluate", "x.h5", "--metrics", "l2", "--nope"], "usage: bapps evaluate"),
    (["judge", "status", "--db", "s.sqlite", "--nope"], "usage: bapps judge status"),
    (["train", "x.h5", "--out", "o", "--precision", "fp64"], "usage: bapps train"),
])
def test_an_argument_error_prints_the_sub_commands_usage(argv, usage, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage), err
    assert "COMMAND ..." not in err  # not the top-level usage


def test_score_takes_several_metrics_and_their_options():
    args = PARSER.parse_args(["score", "--dir0", "a", "--dir1", "b", "--metrics", "ssim", "psnr", "lpips-alex",
                              "--metric-option", "ssim.win_size=7", "--precision", "bf16"])
    assert args.metrics == ["ssim", "psnr", "lpips-alex"] and args.metric_option == ["ssim.win_size=7"]
    assert args.precision == "bf16"
    assert PARSER.parse_args(["score", "a.png", "b.png", "--metric", "l2"]).metrics == ["l2"]
