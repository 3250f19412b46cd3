"""The settings of :class:`~lbp_motion.datamodules.emopain.EmoPainDataModule`, checked
without reading any file (a :class:`~lbp_motion.errors.ConfigError` naming the first bad
one): the task's classes and the kept ones, the ranges and choices of the other
settings, the augmentations the samples can take, and the samples' length and stride."""

from __future__ import annotations

from typing import Any

from lbp_motion.datasets.emopain.features import feature_names
from lbp_motion.datasets.emopain.format import PAIN_CLASSES, PROTECTIVE_CLASSES
from lbp_motion.errors import ConfigError
from lbp_motion.transforms.augment import Pipeline

#: Each task's classes, in label order.
TASK_CLASSES = {"pain": list(PAIN_CLASSES), "protective": list(PROTECTIVE_CLASSES)}


def task_classes(
    task: str, classes: list[str] | None, keep_classes: list[str] | None
) -> tuple[list[str], list[str]]:
    """The ``task``'s classes and the kept ones (``keep_classes``, or all); ConfigError
    for an unknown task, ``classes`` other than the task's or a kept class outside them."""
    if task not in TASK_CLASSES:
        raise ConfigError(f"data: task={task!r}; expected 'pain' or 'protective'")
    fixed = TASK_CLASSES[task]
    if classes is not None and list(classes) != fixed:
        raise ConfigError(
            f"data: classes={list(classes)}; the {task} task's classes are {fixed} (leave classes unset)"
        )
    kept = fixed if keep_classes is None else list(keep_classes)
    if not set(kept) <= set(fixed):
        raise ConfigError(
            f"data: keep_classes={list(kept)}; expected classes of the {task} task {fixed}"
        )
    return fixed, kept


def check_settings(
    *,
    features: str,
    fps: float,
    segment_length: int,
    segment_stride: int | None,
    window_seconds: float,
    overlap: float,
    vote_threshold: float,
    split: str,
    test_from: str,
    predict_split: str,
    val_fraction: float,
    test_fraction: float,
    **_: Any,
) -> None:
    """ConfigError naming the first bad setting of :class:`~lbp_motion.datamodules.emopain.EmoPainDataModule` (without
    reading any file); called with all its settings (``self.hparams``)."""
    feature_names(features)  # validates ``features``
    if not fps > 0:
        raise ConfigError(f"data: fps={fps}; expected a positive number")
    if segment_length <= 0 or (segment_stride is not None and segment_stride <= 0):
        raise ConfigError(
            f"data: segment_length={segment_length} and segment_stride={segment_stride} must be positive"
        )
    if not window_seconds > 0 or round(window_seconds * fps) < 1:
        raise ConfigError(
            f"data: window_seconds={window_seconds}; expected at least one frame at fps={fps}"
        )
    if not 0 <= overlap < 1:
        raise ConfigError(f"data: overlap={overlap}; expected a fraction in [0, 1)")
    if not 0 <= vote_threshold < 1:
        raise ConfigError(f"data: vote_threshold={vote_threshold}; expected a fraction in [0, 1)")
    if split not in ("challenge", "subject"):
        raise ConfigError(f"data: split={split!r}; expected 'challenge' or 'subject'")
    if test_from not in ("validation", "test"):
        raise ConfigError(f"data: test_from={test_from!r}; expected 'validation' or 'test'")
    if predict_split not in {"train", "val", "test", "all"}:
        raise ConfigError(
            f"data: predict_split={predict_split!r}; expected train, val, test or all"
        )
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"data: val_fraction={val_fraction} and test_fraction={test_fraction} must be >= 0 and sum below 1"
        )


def sample_geometry(
    *,
    task: str,
    segment_length: int,
    segment_stride: int | None,
    window_seconds: float,
    overlap: float,
    fps: float,
    **_: Any,
) -> tuple[int, int]:
    """Frames per sample and between sample starts: the pain task's segments, the
    protective task's windows of ``window_seconds`` overlapping by ``overlap``; called
    with all the settings (``self.hparams``)."""
    if task == "pain":
        return segment_length, segment_stride or segment_length
    length = int(round(window_seconds * fps))
    return length, max(1, int(round(length * (1 - overlap))))


def check_augment(
    pipe: Pipeline | None,
    features: str,
    joint_angles: bool,
    joint_energies: bool,
    frame_protective: bool,
) -> None:
    """ConfigError for an augmentation the EmoPain samples cannot take: spatial
    transforms without the joint coordinates alone, temporal ones with per-frame targets."""
    if pipe is not None and pipe.spatial and (features == "emg" or joint_angles or joint_energies):
        raise ConfigError(
            f"data: augment: {pipe.spatial[0].name} moves joints, but features={features!r}, "
            f"joint_angles={joint_angles}, joint_energies={joint_energies}; spatial transforms need "
            "features coords or both and no joint angles or energies (or keep to speed and crop)"
        )
    if pipe is not None and pipe.temporal and frame_protective:
        raise ConfigError(
            f"data: augment: {pipe.temporal[0].name} resamples time, which the per-frame targets "
            "of frame_protective=true would not follow; drop speed and crop or frame_protective"
        )
