"""Skeleton augmentation of training windows (docs/data-format.md, "Augmentation").

A pipeline is a list of transforms chosen in the config, as PySKL / MMAction2 skeleton
pipelines are::

    data:
      init_args:
        augment:
          - {name: speed, factor: [0.8, 1.25]}
          - {name: mirror, p: 0.5}
          - {name: rotate, degrees: 15}
        augment_seed: 0

Two kinds of transform:

* **temporal** transforms (``speed``, ``crop``) act on the *sampling times* of a window:
  which (fractional) frames of the recording its ``window`` frames are read from. The
  window is then read by interpolation, so the model always sees ``window`` frames.
  They come first in the list (an error otherwise).
* **spatial** transforms (``rotate``, ``scale``, ``shear``, ``mirror``, ``noise``,
  ``dropout``) act on the raw joint coordinates of that window, a :class:`Skeleton`
  of positions (T, J, D) (D = 2: image x, y in pixels; D = 3: EmoPain X, Y, Z) and
  confidences (T, J) (0 = missing), before any normalisation.

Every transform is a small dataclass with its parameters and ``__call__(x, rng)``; they
draw only from the ``rng`` they are given. :class:`AugmentedDataset` wraps a training
dataset and gives item ``i`` of epoch ``e`` the generator
``numpy.random.default_rng([seed, e, i])``: the draws do not depend on the DataLoader
workers or the order of the items, change with the epoch and repeat between runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from lbp_motion.datasets.layouts import Layout
from lbp_motion.errors import ConfigError

# --------------------------------------------------------------------------------------
# what the transforms act on
# --------------------------------------------------------------------------------------


@dataclass
class Span:
    """Sampling times of a window: ``times`` (T,) float frame positions in the source
    array, all within ``[lo, hi]`` (the frames that may be read)."""

    times: np.ndarray
    lo: float
    hi: float


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
            :meth:`Pipeline.skeleton` fixes it to the window's centre before its first
            transform (rotation, scaling, shear and mirror keep that point in place).
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


# --------------------------------------------------------------------------------------
# the transforms
# --------------------------------------------------------------------------------------


def _check(cond: bool, name: str, what: str, value: Any, expected: str) -> None:
    if not cond:
        raise ConfigError(
            f"data: augment: {name}: field {what!r} is {value!r}; expected {expected}"
        )


def _check_range(name: str, what: str, value: Any, *, positive: bool = True) -> tuple[float, float]:
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ok = ok and value[0] <= value[1] and (not positive or value[0] > 0)
    _check(
        ok,
        name,
        what,
        value,
        "[low, high] with " + ("0 < low <= high" if positive else "low <= high"),
    )
    return float(value[0]), float(value[1])


def _check_p(name: str, p: Any) -> None:
    _check(
        isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 1,
        name,
        "p",
        p,
        "a probability in [0, 1]",
    )


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


TRANSFORMS: dict[str, type] = {
    cls.name: cls for cls in (Speed, Crop, Rotate, Scale, Shear, Mirror, Noise, Dropout)
}


# --------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------


@dataclass
class Pipeline:
    """Transforms in config order: the temporal ones, then the spatial ones."""

    transforms: list = field(default_factory=list)

    @property
    def temporal(self) -> list:
        return [t for t in self.transforms if t.temporal]

    @property
    def spatial(self) -> list:
        return [t for t in self.transforms if not t.temporal]

    def names(self) -> list[str]:
        return [t.name for t in self.transforms]

    def times(
        self, start: int, length: int, lo: float, hi: float, rng: np.random.Generator
    ) -> np.ndarray:
        """(length,) source frame positions of the window ``[start, start + length)``
        after the temporal transforms; reads stay within ``[lo, hi]``."""
        span = Span(np.arange(start, start + length, dtype=np.float64), float(lo), float(hi))
        for t in self.temporal:
            span = t(span, rng)
        return span.times

    def skeleton(self, sk: Skeleton, rng: np.random.Generator) -> Skeleton:
        if self.spatial:
            sk = dataclasses.replace(sk, origin=sk.centre())
        for t in self.spatial:
            sk = t(sk, rng)
        return sk

    def keypoints(
        self,
        recording: np.ndarray,
        start: int,
        length: int,
        rng: np.random.Generator,
        *,
        scale: float,
        flip_pairs: tuple[tuple[int, int], ...],
    ) -> np.ndarray:
        """An augmented TUG window: ``recording`` (N, J, 3) x, y, confidence in pixels
        -> (length, J, 3) float32, read at :meth:`times` (anywhere in the recording)
        and transformed by the spatial transforms."""
        times = self.times(start, length, 0, len(recording) - 1, rng)
        kp = interpolate_keypoints(recording, times)
        sk = self.skeleton(
            Skeleton(kp[..., :2].astype(np.float64), kp[..., 2], scale, flip_pairs), rng
        )
        out = np.empty((length, kp.shape[1], 3), dtype=np.float32)
        out[..., :2] = sk.coords
        out[..., 2] = sk.confidence
        return out


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


def augment_features(
    pipeline: Pipeline,
    features: np.ndarray,
    start: int,
    real: int,
    rng: np.random.Generator,
    *,
    layout: Layout,
    coord_columns: int,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
    vertical: int = 1,
) -> np.ndarray:
    """An augmented EmoPain sample: ``features`` (N, F) of a recording, the sample's
    ``real`` frames from ``start`` -> (real, F) float32.

    The temporal transforms read every feature column at their times, within the
    sample's own frames. The spatial ones act on the first ``coord_columns`` columns,
    3D joint positions (joint-major x, y, z; ``vertical`` is the up axis),
    de-standardised with ``mean``/``std`` of those columns first and standardised again
    after; a dropped joint's columns are 0 (as padding is).
    """
    times = pipeline.times(start, real, start, start + real - 1, rng)
    out = interpolate_frames(features, times)
    if pipeline.spatial and coord_columns:
        mean = (
            np.zeros(coord_columns)
            if mean is None
            else np.asarray(mean[:coord_columns], np.float64)
        )
        std = np.ones(coord_columns) if std is None else np.asarray(std[:coord_columns], np.float64)
        coords = (out[:, :coord_columns] * std + mean).reshape(real, layout.num_joints, -1)
        sk = Skeleton(
            coords,
            np.ones(coords.shape[:2]),
            torso_length(coords, layout),
            layout.flip_pairs,
            vertical,
        )
        sk = pipeline.skeleton(sk, rng)
        cols = (sk.coords.reshape(real, -1) - mean) / std
        cols[np.repeat(~sk.visible, coords.shape[-1], axis=1)] = 0.0
        out[:, :coord_columns] = cols
    return out.astype(np.float32)


def build_pipeline(config: Sequence[dict[str, Any]] | None) -> Pipeline | None:
    """A :class:`Pipeline` from the config list ``[{name: ..., <field>: ...}, ...]``;
    None for None or an empty list. Raises :class:`ConfigError` (one line naming the
    transform and the field) for an unknown name or field, or a bad value."""
    if not config:
        return None
    if isinstance(config, (str, dict)) or not isinstance(config, Sequence):
        raise ConfigError(
            f"data: augment={config!r}; expected a list of transforms like [{{name: rotate, degrees: 15}}]"
        )
    transforms = []
    for k, entry in enumerate(config):
        where = f"data: augment[{k}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise ConfigError(
                f"{where}={entry!r}; expected a mapping with a 'name' (one of {sorted(TRANSFORMS)})"
            )
        name = entry["name"]
        cls = TRANSFORMS.get(name)
        if cls is None:
            raise ConfigError(
                f"{where}: unknown transform {name!r}; expected one of {sorted(TRANSFORMS)}"
            )
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(entry) - fields - {"name"})
        if unknown:
            raise ConfigError(
                f"{where} ({name}): unknown field {unknown[0]!r}; {name} takes {sorted(fields)}"
            )
        params = {
            key: (tuple(v) if isinstance(v, list) else v)
            for key, v in entry.items()
            if key != "name"
        }
        try:
            transforms.append(cls(**params))
        except ConfigError as err:
            raise ConfigError(str(err).replace("data: augment:", f"{where}:", 1)) from None
        except TypeError as err:  # a value of the wrong type deep inside a check
            raise ConfigError(f"{where} ({name}): {err}") from None
    seen_spatial = None
    for k, t in enumerate(transforms):
        if not t.temporal:
            seen_spatial = seen_spatial or t.name
        elif seen_spatial:
            raise ConfigError(
                f"data: augment[{k}] ({t.name}): temporal transforms (speed, crop) must come before "
                f"the spatial ones ({seen_spatial} is earlier)"
            )
    return Pipeline(transforms)


# --------------------------------------------------------------------------------------
# datasets and sampling
# --------------------------------------------------------------------------------------


class AugmentedDataset(torch.utils.data.Dataset):
    """The training dataset ``base`` with its windows augmented by ``pipeline``.

    Item ``i`` of epoch ``e`` (key ``(e, i)``, as :class:`EpochSampler` yields; a plain
    ``i`` uses :attr:`epoch`) is ``base[i]`` computed while ``base._rng`` is
    ``default_rng([seed, e, i])``; the base dataset's ``__getitem__`` hands its raw
    window to the pipeline when ``_rng`` is set (its augmentation hook). Labels,
    recording and subject ids are the base item's. Other attributes are the base's.
    """

    def __init__(self, base: torch.utils.data.Dataset, pipeline: Pipeline, seed: int = 0) -> None:
        self.base = base
        self.pipeline = pipeline
        self.seed = int(seed)
        self.epoch = 0
        base.transform = pipeline

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name: str) -> Any:
        if name in ("base", "__setstate__", "__getstate__"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def rng(self, epoch: int, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(epoch), int(i)])

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        self.base._rng = self.rng(epoch, i)
        try:
            return self.base[i]
        finally:
            self.base._rng = None

    def sampler(self, shuffle: bool) -> EpochSampler:
        return EpochSampler(self, shuffle)


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``(epoch, index)`` keys for :class:`AugmentedDataset`, shuffled like the
    DataLoader's own ``shuffle=True`` (torch's global generator). Lightning calls
    :meth:`set_epoch` before every training epoch; used without a Trainer, each pass
    counts as the next epoch."""

    def __init__(self, dataset: AugmentedDataset, shuffle: bool = True) -> None:
        self.dataset = dataset
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        self.epoch += 1
        n = len(self.dataset)
        order = torch.randperm(n).tolist() if self.shuffle else range(n)
        for i in order:
            yield epoch, i
