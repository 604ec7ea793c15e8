"""The simulated observer of the mini set: a hidden distance that no metric of the toolkit computes.

The distance is a Lab colour error after a blur plus a gradient-magnitude structure term; see
the package docstring of :mod:`bapps_toolkit.data.mini`.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

# Observer constants (documented in the module docstring).
OBS_SIGMA = 1.5
OBS_C = 25.0
OBS_W_COLOR = 0.04
OBS_W_STRUCT = 1.5
OBS_TAU = 0.12
OBS_NOISE = 1.0
JND_THETA = 0.18
JND_TAU = 0.05


# --------------------------------------------------------------------------- observer

_SRGB_LINEAR = np.array([c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
                         for c in np.arange(256) / 255.0], np.float32)
_RGB_TO_XYZ_D65 = (np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                             [0.019334, 0.119193, 0.950227]]) / np.array([[0.95047], [1.0], [1.08883]])
                   ).astype(np.float32)


def _srgb_to_lab(u8: np.ndarray) -> np.ndarray:
    """uint8 sRGB ``[..., 3]`` -> CIE Lab (D65 white), float32."""
    xyz = _SRGB_LINEAR[u8] @ _RGB_TO_XYZ_D65.T
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return np.asarray(lab)


def observer_features(u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blurred Lab and L-gradient magnitude of a uint8 batch (the observer's internal view)."""
    lab = _srgb_to_lab(u8)
    blurred = ndimage.gaussian_filter(lab, (0, OBS_SIGMA, OBS_SIGMA, 0), mode="reflect")
    gy, gx = np.gradient(lab[..., 0], axis=(1, 2))
    return blurred, np.sqrt(gx * gx + gy * gy)


def observer_from_features(fx: tuple[np.ndarray, np.ndarray], fy: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The observer's distance between two batches, from their :func:`observer_features`."""
    (bx, gx), (by, gy) = fx, fy
    e = np.sqrt(((bx - by) ** 2).sum(-1)).mean(axis=(1, 2), dtype=np.float64)
    gms = (2 * gx * gy + OBS_C) / (gx * gx + gy * gy + OBS_C)
    s = 1.0 - gms.mean(axis=(1, 2), dtype=np.float64)
    return np.asarray(OBS_W_COLOR * e + OBS_W_STRUCT * s)


def observer_distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Hidden distance of the simulated observer for uint8 ``[N, 64, 64, 3]`` batches -> ``[N]``.

    ``D = 0.04·E + 1.5·S`` with ``E`` the mean Lab distance after a σ = 1.5 Gaussian blur and
    ``S`` = 1 − mean gradient-magnitude similarity of the L channel (constant 25); see the module
    docstring.
    """
    return observer_from_features(observer_features(x), observer_features(y))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-z))``."""
    p: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return p
