"""The metric registry: one create_metric, option errors typed and decided by the signature."""
from __future__ import annotations

import pytest
import torch

from bapps_toolkit.errors import BappsError, MetricOptionError, UnknownMetricError
from bapps_toolkit.metrics import Metric, create_metric, register_metric
from bapps_toolkit.metrics.base import create_registered_metric, registered_entry, unregister_metric
from bapps_toolkit.metrics.pixel import L2


def test_unknown_option_is_a_typed_error_with_the_allowed_options() -> None:
    with pytest.raises(MetricOptionError) as info:
        create_metric("l2", input_rnge=(0, 1))
    err = info.value
    assert isinstance(err, BappsError) and isinstance(err, ValueError)
    assert (err.metric, err.option) == ("l2", "input_rnge")
    assert "input_range" in err.allowed and "self" not in err.allowed
    assert "metric l2 has no option input_rnge; did you mean input_range? Its options: " in str(err)


def test_option_check_happens_before_the_factory_runs() -> None:
    calls: list[dict[str, object]] = []

    def make(**options: object) -> L2:
        calls.append(dict(options))
        return L2(**options)  # type: ignore[arg-type]

    register_metric("test-registry-l2", make, "test", options_of=L2)
    try:
        with pytest.raises(MetricOptionError, match="has no option nope"):
            create_metric("test-registry-l2", nope=1)
        assert calls == []
        m = create_metric("TEST-registry-l2", input_range=(0, 1))
        assert m.input_range == (0.0, 1.0) and not m.training
    finally:
        unregister_metric("test-registry-l2")
    assert registered_entry("test-registry-l2") is None


def test_kwargs_factory_without_declared_options_is_not_second_guessed() -> None:
    def make(**options: object) -> Metric:
        raise TypeError(f"its own message {sorted(options)}")

    register_metric("test-registry-kw", make, "test")
    try:
        entry = registered_entry("test-registry-kw")
        assert entry is not None and entry.options is None
        with pytest.raises(TypeError, match=r"its own message \['anything'\]"):
            create_metric("test-registry-kw", anything=1)
    finally:
        unregister_metric("test-registry-kw")


def test_unknown_name_is_typed_and_lists_known_names() -> None:
    with pytest.raises(UnknownMetricError, match="unknown metric 'lpips-alx'; did you mean lpips-alex"):
        create_metric("lpips-alx")
    with pytest.raises(UnknownMetricError, match="known metrics: .*ssim"):
        create_registered_metric("nothing-like-it")


def test_fixed_options_keep_their_own_message() -> None:
    with pytest.raises(ValueError, match="net= is fixed by the metric name lpips-alex"):
        create_metric("lpips-alex", net="vgg")
    with pytest.raises(ValueError, match="official= is fixed by the metric name"):
        create_metric("l2-rgb-official", official=False)


def test_every_registered_metric_declares_its_options() -> None:
    from bapps_toolkit.metrics.base import list_metrics

    for name in list_metrics():
        entry = registered_entry(name)
        assert entry is not None and entry.options is not None, name
        assert "input_range" in entry.options, name


def test_front_end_and_registry_build_the_same_metric() -> None:
    x0, x1 = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    a, b = create_metric("ssim"), create_registered_metric("ssim")
    assert torch.equal(a(x0, x1), b(x0, x1))
