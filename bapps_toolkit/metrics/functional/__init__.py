"""Building blocks shared by the metrics.

Filter windows, padding, MATLAB resize/rounding and colour conversion, differentiable sorting.
Nothing here validates metric inputs (see :mod:`.._validate`).
"""
from .color import official_float32, quantize_official, rgb_to_gray, rgb_to_lab, rgb_to_yiq
from .padding import symmetric_pad
from .resize import (
    matlab_box_downsample_symmetric,
    matlab_box_downsample_zero,
    matlab_downsample_factor,
    matlab_round,
)
from .sorting import sort_with_order, sorted_values
from .windows import check_window, filter_valid, gaussian_window, uniform_window

__all__ = [
    "check_window",
    "filter_valid",
    "gaussian_window",
    "matlab_box_downsample_symmetric",
    "matlab_box_downsample_zero",
    "matlab_downsample_factor",
    "matlab_round",
    "official_float32",
    "quantize_official",
    "rgb_to_gray",
    "rgb_to_lab",
    "rgb_to_yiq",
    "sort_with_order",
    "sorted_values",
    "symmetric_pad",
    "uniform_window",
]
