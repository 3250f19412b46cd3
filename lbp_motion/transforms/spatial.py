"""Spatial augmentations (docs/data-format.md, "Augmentation"): transforms of the raw
joint coordinates of a window, a :class:`Skeleton` of positions and confidences, before
any normalisation. Part of the pipelines of :mod:`.augment`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lbp_motion.datasets.layouts import Layout
from lbp_motion.transforms._checks import _check, _check_p, _check_range


@dataclass
class Skeleton:
    """Raw joints of one window.

    Attributes:
        coords: (T, J, D) float64 positions.
        confidence: (T, J) float; 0 marks a missing joint (TUG: the pose confidence).
        scale: body size in the units of ``coords`` (noise is relative to it).
        flip_pairs: joint index pairs that swap under a left/right mirror.
        vertical: the vertical axis of 3D coordinates (rotation is about it, the mirror
            reflects the first other axis); None for 2D (rotation in the image plane,
            the mirror reflects x).
        origin: the centre the transforms act about; None: :meth:`centre` computes it.
            ``Pipeline.skeleton`` (:mod:`.augment`) fixes it to the window's centre before
            its first transform (rotation, scaling, shear and mirror keep that point in
            place).
    """

    coords: np.ndarray
    confidence: np.ndarray
    scale: float = 1.0
    flip_pairs: tuple[tuple[int, int], ...] = ()
    vertical: int | None = None
    origin: np.ndarray | None = None

    @property
    def visible(self) -> np.ndarray:
        return self.confidence > 0

    def centre(self) -> np.ndarray:
        """(D,) :attr:`origin`, or the mean of the visible joints over the window (zeros
        if none)."""
        if self.origin is not None:
            return self.origin
        w = self.visible[..., None]
        n = w.sum()
        return (self.coords * w).sum(axis=(0, 1)) / n if n else np.zeros(self.coords.shape[-1])

    def linear(self, matrix: np.ndarray) -> Skeleton:
        """Apply ``matrix`` (D, D) to the positions about :meth:`centre`."""
        c = self.centre()
        coords = (self.coords - c) @ matrix.T + c
        return dataclasses.replace(self, coords=coords)


def _rotation(theta: float, dims: int, vertical: int | None) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    if dims == 2:
        return np.array([[c, -s], [s, c]])
    a, b = (ax for ax in range(dims) if ax != (1 if vertical is None else vertical))
    m = np.eye(dims)
    m[a, a], m[a, b], m[b, a], m[b, b] = c, -s, s, c
    return m


@dataclass
class Rotate:
    """Rotation by an angle uniform in ``[-degrees, degrees]`` about the window's centre:
    in the image plane (2D), about the vertical axis (3D)."""

    degrees: float = 15.0
    p: float = 1.0
    name: ClassVar[str] = "rotate"
    temporal: ClassVar[bool] = False

    def __post_init__(self) -> None:
        d = self.degrees
        _check(
            isinstance(d, (int, float)) and 0 <= d <= 180,
            self.name,
            "degrees",
            d,
            "an angle in [0, 180]",
        )
        _check_p(self.name, self.p)

    def __call__(self, sk: Skeleton, rng: np.random.Generator) -> Skeleton:
        theta = np.deg2rad(rng.uniform(-self.degrees, self.degrees))
        if rng.random() >= self.p:
            return sk
        return sk.linear(_rotation(theta, sk.coords.shape[-1], sk.vertical))


@dataclass
class Scale:
    """Uniform scaling by a factor uniform in ``factor`` about the window's centre (the
    body looks bigger or smaller than the recording's body size)."""

    factor: tuple[float, float] = (0.9, 1.1)
    p: float = 1.0
    name: ClassVar[str] = "scale"
    temporal: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.factor = _check_range(self.name, "factor", self.factor)
        _check_p(self.name, self.p)

    def __call__(self, sk: Skeleton, rng: np.random.Generator) -> Skeleton:
        f = rng.uniform(*self.factor)
        if rng.random() >= self.p:
            return sk
        return sk.linear(np.eye(sk.coords.shape[-1]) * f)


@dataclass
class Shear:
    """Shear: positions times ``I + S`` about the window's centre, every off-diagonal
    entry of ``S`` uniform in ``[-max, max]``."""

    max: float = 0.1
    p: float = 1.0
    name: ClassVar[str] = "shear"
    temporal: ClassVar[bool] = False

    def __post_init__(self) -> None:
        m = self.max
        _check(
            isinstance(m, (int, float)) and 0 <= m < 1, self.name, "max", m, "a number in [0, 1)"
        )
        _check_p(self.name, self.p)

    def __call__(self, sk: Skeleton, rng: np.random.Generator) -> Skeleton:
        d = sk.coords.shape[-1]
        s = rng.uniform(-self.max, self.max, size=(d, d))
        if rng.random() >= self.p:
            return sk
        return sk.linear(np.eye(d) + s * (1 - np.eye(d)))


@dataclass
class Mirror:
    """Left/right mirror with probability ``p``: the joints of every flip pair swap and
    the horizontal axis (x; 3D: the first axis that is not vertical) is reflected about
    the window's centre."""

    p: float = 0.5
    name: ClassVar[str] = "mirror"
    temporal: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _check_p(self.name, self.p)

    def __call__(self, sk: Skeleton, rng: np.random.Generator) -> Skeleton:
        if rng.random() >= self.p:
            return sk
        return mirror(sk)


def mirror(sk: Skeleton) -> Skeleton:
    """The mirror image of ``sk`` (see :class:`Mirror`)."""
    axis = 0 if sk.vertical != 0 else 1
    c = sk.centre()
    coords = sk.coords.copy()
    coords[..., axis] = 2 * c[axis] - coords[..., axis]
    perm = np.arange(coords.shape[1])
    for a, b in sk.flip_pairs:
        perm[a], perm[b] = b, a
    return dataclasses.replace(sk, coords=coords[:, perm], confidence=sk.confidence[:, perm])


@dataclass
class Noise:
    """Gaussian noise on every visible joint's position in every frame, standard
    deviation ``std`` body sizes (TUG: the recording's torso length)."""

    std: float = 0.01
    p: float = 1.0
    name: ClassVar[str] = "noise"
    temporal: ClassVar[bool] = False

    def __post_init__(self) -> None:
        s = self.std
        _check(isinstance(s, (int, float)) and s >= 0, self.name, "std", s, "a number >= 0")
        _check_p(self.name, self.p)

    def __call__(self, sk: Skeleton, rng: np.random.Generator) -> Skeleton:
        noise = rng.normal(0.0, self.std * sk.scale, size=sk.coords.shape)
        if rng.random() >= self.p:
            return sk
        return dataclasses.replace(sk, coords=sk.coords + noise * sk.visible[..., None])


@dataclass
class Dropout:
    """Random joint dropout: each joint of each frame (``whole_window``: each joint for
    the whole window) is made missing (confidence 0) with probability ``rate``."""

    rate: float = 0.05
    whole_window: bool = False
    name: ClassVar[str] = "dropout"
    temporal: ClassVar[bool] = False

    def __post_init__(self) -> None:
        r = self.rate
        _check(
            isinstance(r, (int, float)) and 0 <= r < 1, self.name, "rate", r, "a fraction in [0, 1)"
        )
        _check(
            isinstance(self.whole_window, bool),
            self.name,
            "whole_window",
            self.whole_window,
            "true or false",
        )

    def __call__(self, sk: Skeleton, rng: np.random.Generator) -> Skeleton:
        t, j = sk.confidence.shape
        drop = rng.random((1, j) if self.whole_window else (t, j)) < self.rate
        return dataclasses.replace(sk, confidence=np.where(drop, 0.0, sk.confidence))


def torso_length(coords: np.ndarray, layout: Layout) -> float:
    """Median distance mid-hip to mid-shoulder over the frames of ``coords`` (T, J, D);
    1.0 without hips or shoulders in the layout or without a positive length."""
    hips, shoulders = layout.hip_indices(), layout.shoulder_indices()
    if hips is None or shoulders is None or not len(coords):
        return 1.0
    mid = lambda pair: coords[:, list(pair)].mean(axis=1)  # noqa: E731
    length = np.linalg.norm(mid(shoulders) - mid(hips), axis=-1)
    length = length[np.isfinite(length) & (length > 0)]
    return float(np.median(length)) if length.size else 1.0
