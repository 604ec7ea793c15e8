"""Issue 10, first hour: a ``--datasets`` short form that names no mode (``val/cnn``) selects the
2AFC and the JND set of that name, and says so (a SelectionNote in Python, one stderr line from
``bapps evaluate``); forms that name the mode, or match one mode only, say nothing."""
from __future__ import annotations

import warnings

import pytest

from bapps_toolkit.cli.main import main
from bapps_toolkit.evaluate import SelectionNote, select_sets

PRESENT = ["2afc/train/mix", "2afc/val/cnn", "2afc/val/traditional", "jnd/val/cnn", "jnd/val/traditional"]


def _notes(datasets):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        keys = select_sets(PRESENT, datasets)
    return keys, [str(w.message) for w in rec if issubclass(w.category, SelectionNote)]


def test_a_short_form_spanning_both_modes_says_what_it_selected():
    assert _notes(["val/cnn"]) == (["2afc/val/cnn", "jnd/val/cnn"], ["val/cnn selected 2afc/val/cnn, jnd/val/cnn"])
    keys, notes = _notes(["val"])
    assert keys == PRESENT[1:] and notes == ["val selected " + ", ".join(PRESENT[1:])]


@pytest.mark.parametrize("datasets", [None, ["2afc/val/cnn"], ["jnd"], ["jnd/val/cnn", "2afc/val"], ["train"],
                                      ["train/mix"]])
def test_forms_naming_the_mode_or_matching_one_mode_say_nothing(datasets):
    keys, notes = _notes(datasets)
    assert keys and notes == []


def test_cli_prints_one_note_line_per_short_form(mini_h5, capsys):
    common = ["evaluate", str(mini_h5), "--metrics", "l2", "--n-boot", "10", "--no-progress", "--quiet"]
    assert main(common + ["--datasets", "val/cnn", "2afc/val/traditional"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if "note:" in line] == [
        "bapps evaluate: note: val/cnn selected 2afc/val/cnn, jnd/val/cnn"]
    assert main(common + ["--datasets", "2afc/val/cnn", "jnd/val/cnn"]) == 0
    assert "note:" not in capsys.readouterr().err
