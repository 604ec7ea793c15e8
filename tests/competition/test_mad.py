"""MAD synthesis (bapps_toolkit.competition.mad): the projected-gradient iteration against a
problem whose extremes are known, the level-set correction, and its input checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bapps_toolkit.competition.mad import MadSettings, correct_level, push
from bapps_toolkit.competition.metricspec import build_metric


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests run on one thread (their tolerances were set so); the count is restored after
    each, so other tests in the same worker keep torch's default."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _mse(ref: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((y - ref) ** 2).flatten(1).mean(1)


def _weighted(w: torch.Tensor):
    def f(ref: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (w * (y - ref) ** 2).flatten(1).mean(1)
    return f


def test_push_reaches_the_known_extremes_of_a_weighted_error_on_the_mse_sphere():
    """Held: MSE; pushed: sum_i w_i e_i^2 / n. On the sphere MSE = r^2 its minimum is w_min r^2
    (all error on the lightest pixels) and its maximum w_max r^2: the iteration must get close."""
    torch.manual_seed(0)
    shape = (1, 1, 8, 8)
    w = torch.linspace(0.5, 2.0, 64).reshape(shape)
    ref = torch.full((2, 1, 8, 8), 0.5)
    start = (ref + 0.02 * torch.randn(1, 1, 8, 8)).clamp(0, 1)
    r2 = float(_mse(ref[:1], start[:1]))
    res = push(_mse, _weighted(w), ref, start, torch.tensor([-1.0, 1.0]),
               MadSettings(max_steps=400, step=0.2, held_tolerance=1e-4))
    assert np.all(np.abs(res.held_end / res.held_start - 1) <= 1e-4)
    lo, hi = res.pushed_end / r2
    assert lo == pytest.approx(0.5, rel=0.03) and hi == pytest.approx(2.0, rel=0.03)
    assert res.pushed_end[0] < res.pushed_start[0] < res.pushed_end[1]
    assert float(res.images.min()) >= 0.0 and float(res.images.max()) <= 1.0


def test_push_l2_held_ssim_pushed_keeps_l2_and_moves_ssim_both_ways():
    rng = np.random.default_rng(1)
    ref = torch.from_numpy(rng.uniform(0.2, 0.8, (1, 3, 32, 32))).float().repeat(2, 1, 1, 1)
    start = (ref + 0.05 * torch.from_numpy(rng.standard_normal((1, 3, 32, 32))).float()).clamp(0, 1)
    l2, ssim = build_metric("l2"), build_metric("ssim")
    res = push(l2, ssim, ref, start, torch.tensor([-1.0, 1.0]), MadSettings(max_steps=30))
    assert np.all(np.abs(res.held_end / res.held_start - 1) <= 1e-3)
    assert res.pushed_end[0] < 0.8 * res.pushed_start[0] and res.pushed_end[1] > 1.2 * res.pushed_start[1]
    assert np.all(res.accepted <= res.steps) and np.all(res.steps <= 30)


def test_correct_level_returns_to_the_mse_level_set_along_the_radius():
    ref = torch.full((3, 1, 4, 4), 0.5)
    y = ref + torch.linspace(-0.1, 0.1, 16).reshape(1, 1, 4, 4)
    target = torch.tensor([1e-3, 2e-3, 5e-4])
    u = 2 * (y - ref) / 16
    out, val = correct_level(_mse, ref, y, u, target, 1e-9 * target, 6)
    assert torch.allclose(val, target, rtol=1e-5)
    assert torch.allclose(_mse(ref, out), target, rtol=1e-5)


def test_settings_and_inputs_are_checked():
    ref = torch.full((1, 1, 4, 4), 0.5)
    with pytest.raises(ValueError, match="step"):
        MadSettings(step=0.0)
    with pytest.raises(ValueError, match="max_steps"):
        MadSettings(max_steps=0)
    with pytest.raises(ValueError, match="equals its reference"):
        push(_mse, _mse, ref, ref.clone(), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="lie in"):
        push(_mse, _mse, ref, ref + 1.0, torch.tensor([1.0]))
    with pytest.raises(ValueError, match="do not fit"):
        push(_mse, _mse, ref, ref + 0.1, torch.tensor([1.0, -1.0]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_push_on_cuda_matches_the_cpu_run():
    rng = np.random.default_rng(2)
    ref = torch.from_numpy(rng.uniform(0.2, 0.8, (2, 3, 32, 32))).float()
    start = (ref + 0.05 * torch.from_numpy(rng.standard_normal((2, 3, 32, 32))).float()).clamp(0, 1)
    sign = torch.tensor([-1.0, 1.0])
    cfg = MadSettings(max_steps=10)
    cpu = push(build_metric("l2"), build_metric("ssim"), ref, start, sign, cfg)
    dev = torch.device("cuda")
    gpu = push(build_metric("l2").to(dev), build_metric("ssim").to(dev), ref.to(dev), start.to(dev), sign.to(dev), cfg)
    assert gpu.images.device.type == "cuda"
    assert np.all(np.abs(gpu.held_end / gpu.held_start - 1) <= 1e-3)
    assert np.allclose(gpu.pushed_end, cpu.pushed_end, rtol=0.05)
