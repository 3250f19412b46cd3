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

The transforms are defined in :mod:`.temporal` and :mod:`.spatial`; this module holds
the registry (:data:`TRANSFORMS`), the pipeline and the datasets, and re-exports the
transforms, so that ``lbp_motion.transforms.augment.Rotate`` and the like keep working.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lbp_motion.datasets.layouts import Layout
from lbp_motion.errors import ConfigError

# the transforms, re-exported: configs and code name them lbp_motion.transforms.augment.X
from lbp_motion.transforms.spatial import Dropout as Dropout
from lbp_motion.transforms.spatial import Mirror as Mirror
from lbp_motion.transforms.spatial import Noise as Noise
from lbp_motion.transforms.spatial import Rotate as Rotate
from lbp_motion.transforms.spatial import Scale as Scale
from lbp_motion.transforms.spatial import Shear as Shear
from lbp_motion.transforms.spatial import Skeleton as Skeleton
from lbp_motion.transforms.spatial import mirror as mirror
from lbp_motion.transforms.spatial import torso_length as torso_length
from lbp_motion.transforms.temporal import Crop as Crop
from lbp_motion.transforms.temporal import Span as Span
from lbp_motion.transforms.temporal import Speed as Speed
from lbp_motion.transforms.temporal import interpolate_frames as interpolate_frames
from lbp_motion.transforms.temporal import interpolate_keypoints as interpolate_keypoints

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
