"""The one parser of numbers read from untrusted text cells (bapps_toolkit.data.cells)."""
from __future__ import annotations

import pytest

from bapps_toolkit.data.cells import parse_finite
from bapps_toolkit.errors import DataError


@pytest.mark.parametrize("text,value", [("0.25", 0.25), (" 1e-3 ", 1e-3), ("-2", -2.0), ("7", 7.0)])
def test_numbers_are_read(text, value):
    assert parse_finite(text, "f.csv, row 2") == value


@pytest.mark.parametrize("text,message", [
    ("high", r"f.csv, row 2: 'high' is not a number"),
    ("", r"f.csv, row 2: '' is not a number"),
    ("0x10", r"'0x10' is not a number"),
    ("inf", r"f.csv, row 2: 'inf' is not a finite number"),
    ("-Infinity", r"'-Infinity' is not a finite number"),
    ("nan", r"'nan' is not a finite number"),
])
def test_bad_cells_name_where_and_what(text, message):
    with pytest.raises(DataError, match=message):
        parse_finite(text, "f.csv, row 2")


def test_a_huge_cell_is_cut_in_the_message():
    with pytest.raises(DataError) as err:
        parse_finite("9" * 50 + "x" * 10**6, "f.csv, row 2")
    assert len(str(err.value)) < 200 and "1000050 characters" in str(err.value)
