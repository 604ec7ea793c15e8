from __future__ import annotations

import pytest
import torch

from bapps_toolkit.train.hinge import hinge_2afc_loss


def test_hinge_values_and_gradient():
    d0 = torch.tensor([0.5, 0.1, 0.30], requires_grad=True)
    d1 = torch.tensor([0.1, 0.5, 0.28])
    judge = torch.tensor([1.0, 1.0, 0.9])
    # y = +1 for all: terms max(0, .05 - (d0 - d1)) = 0, 0.45, 0.03
    loss = hinge_2afc_loss(d0, d1, judge, margin=0.05)
    assert loss.item() == pytest.approx((0.45 + 0.03) / 3)
    loss.backward()
    assert d0.grad.tolist() == pytest.approx([0.0, -1 / 3, -1 / 3])
    assert hinge_2afc_loss(d0, d1, 1 - judge, margin=0.0).item() == pytest.approx((0.4 + 0.02) / 3)
    with pytest.raises(ValueError, match="one value per triplet"):
        hinge_2afc_loss(d0, d1[:2], judge)
