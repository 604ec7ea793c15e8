"""One dataset selection: ``bapps evaluate`` and ``bapps train`` choose the same sets for the same selectors."""
from __future__ import annotations

import warnings

import pytest

from bapps_toolkit.data import find_sets
from bapps_toolkit.data.layout import expand_datasets
from bapps_toolkit.data.selection import select_keys
from bapps_toolkit.errors import DataError
from bapps_toolkit.evaluate import select_sets
from bapps_toolkit.train.config import TrainConfig
from bapps_toolkit.train.data import select_train_keys, select_val_keys

SELECTORS = [["val/cnn"], ["val"], ["train"], ["2afc/val"], ["2afc"], ["train/mix", "val/traditional"],
             ["VAL/CNN"], ["2afc/val/cnn", "val/cnn"], "val/color"]


@pytest.mark.parametrize("selectors", SELECTORS)
def test_evaluate_and_train_choose_the_same_2afc_sets(mini_root, selectors):
    present = find_sets(str(mini_root))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluated = [k for k in select_sets(present, [selectors] if isinstance(selectors, str) else selectors)
                     if k.startswith("2afc/")]
    trained = select_train_keys(TrainConfig(data=str(mini_root), datasets=selectors))
    validated = select_val_keys(TrainConfig(data=str(mini_root), val_datasets=selectors))
    assert evaluated and evaluated == trained == validated == expand_datasets(selectors, present, "2afc")


PRESENT = ["2afc/train/mix", "2afc/val/cnn", "2afc/val/Blur_2", "jnd/val/cnn", "jnd/val/Blur_2"]


def test_the_rule():
    assert select_keys(PRESENT, "val/cnn").keys == ["2afc/val/cnn", "jnd/val/cnn"]
    assert select_keys(PRESENT, "val/cnn").notes == ["val/cnn selected 2afc/val/cnn, jnd/val/cnn"]
    assert select_keys(PRESENT, "val/cnn", kinds=["2afc"]).keys == ["2afc/val/cnn"]
    assert select_keys(PRESENT, "val/cnn", kinds=["2afc"]).notes == []
    assert select_keys(PRESENT, "val/blur_2").keys == ["2afc/val/Blur_2", "jnd/val/Blur_2"]
    assert select_keys(PRESENT, ["jnd", "train"]).keys == ["2afc/train/mix", "jnd/val/cnn", "jnd/val/Blur_2"]
    assert select_keys(PRESENT, None).keys == PRESENT[1:]
    assert select_keys(PRESENT, None, default_split=None, kinds=["2afc"]).keys == PRESENT[:3]


def test_selection_errors_name_what_is_there():
    with pytest.raises(DataError, match=r"'val/deblur' is not present in the source \(present: 2afc/train/mix"):
        select_keys(PRESENT, ["val/deblur"], known=["2afc/val/deblur"])
    with pytest.raises(DataError, match="unknown 2AFC dataset 'jnd'"):
        select_keys(PRESENT, ["jnd"], kinds=["2afc"])
    with pytest.raises(DataError, match="empty list"):
        select_keys(PRESENT, [])
    with pytest.raises(TypeError, match="must be strings"):
        select_keys(PRESENT, [3])  # type: ignore[list-item]
    with pytest.raises(DataError, match="train sets are used only when named"):
        select_keys(["2afc/train/mix"], None)
