"""Temporal augmentations (docs/data-format.md, "Augmentation"): transforms of the
*sampling times* of a window, which (fractional) frames of the recording its frames are
read from, and the interpolation that reads them. Part of the pipelines of
:mod:`.augment`, where they come before the spatial transforms."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lbp_motion.transforms._checks import _check, _check_p, _check_range


@dataclass
class Span:
    """Sampling times of a window: ``times`` (T,) float frame positions in the source
    array, all within ``[lo, hi]`` (the frames that may be read)."""

    times: np.ndarray
    lo: float
    hi: float


@dataclass
class Speed:
    """Temporal resampling (speed change): the window reads ``f`` times as many source
    frames, ``f`` log-uniform in ``factor`` (> 1: faster motion, < 1: slower), about the
    middle of its span, shifted to stay within the readable frames; where they are too
    few the factor is reduced to fit."""

    factor: tuple[float, float] = (0.8, 1.25)
    p: float = 1.0
    name: ClassVar[str] = "speed"
    temporal: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self.factor = _check_range(self.name, "factor", self.factor)
        _check_p(self.name, self.p)

    def __call__(self, span: Span, rng: np.random.Generator) -> Span:
        f = float(np.exp(rng.uniform(np.log(self.factor[0]), np.log(self.factor[1]))))
        if rng.random() >= self.p or len(span.times) < 2:
            return span
        t = span.times
        mid = (t[0] + t[-1]) / 2
        width = (t[-1] - t[0]) * f
        if width > span.hi - span.lo:
            f *= (span.hi - span.lo) / max(width, 1e-12)
        times = mid + (t - mid) * f
        times += max(0.0, span.lo - times[0]) - max(0.0, times[-1] - span.hi)
        return dataclasses.replace(span, times=np.clip(times, span.lo, span.hi))


@dataclass
class Crop:
    """Random temporal crop: a part of ``r`` of the window's span (``r`` uniform in
    ``[min_ratio, 1]``) at a random offset, stretched back to the window's length (the
    motion is slowed down by ``1 / r``)."""

    min_ratio: float = 0.8
    p: float = 1.0
    name: ClassVar[str] = "crop"
    temporal: ClassVar[bool] = True

    def __post_init__(self) -> None:
        r = self.min_ratio
        _check(
            isinstance(r, (int, float)) and 0 < r <= 1,
            self.name,
            "min_ratio",
            r,
            "a fraction in (0, 1]",
        )
        _check_p(self.name, self.p)

    def __call__(self, span: Span, rng: np.random.Generator) -> Span:
        r = rng.uniform(self.min_ratio, 1.0)
        u = rng.random()
        if rng.random() >= self.p or len(span.times) < 2:
            return span
        n = len(span.times)
        positions = u * (n - 1) * (1 - r) + np.linspace(0, (n - 1) * r, n)
        return dataclasses.replace(span, times=np.interp(positions, np.arange(n), span.times))


def interpolate_keypoints(frames: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Keypoints (N, J, C) whose last channel is a confidence, read at fractional
    ``times``: positions are linear between the two neighbouring frames where the joint
    is present (confidence > 0) in both, with the lower confidence; otherwise the
    nearer frame's values."""
    a = np.clip(np.floor(times).astype(np.int64), 0, len(frames) - 1)
    b = np.minimum(a + 1, len(frames) - 1)
    w = (times - a)[:, None, None]
    fa, fb = frames[a].astype(np.float64), frames[b].astype(np.float64)
    nearest = np.where(w < 0.5, fa, fb)
    both = (fa[..., -1] > 0) & (fb[..., -1] > 0) & (w[..., 0] > 0)  # on a frame: that frame
    blend = fa * (1 - w) + fb * w
    blend[..., -1] = np.minimum(fa[..., -1], fb[..., -1])
    return np.where(both[..., None], blend, nearest)


def interpolate_frames(frames: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Rows of ``frames`` (N, ...) read at fractional ``times`` by linear interpolation."""
    a = np.clip(np.floor(times).astype(np.int64), 0, len(frames) - 1)
    b = np.minimum(a + 1, len(frames) - 1)
    w = (times - a).reshape((-1,) + (1,) * (frames.ndim - 1))
    return frames[a].astype(np.float64) * (1 - w) + frames[b].astype(np.float64) * w
