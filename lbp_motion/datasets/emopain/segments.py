"""PLAAN's segmentation of EmoPain recordings into labelled samples.

A recording is cut into *exercise instances* (maximal runs of frames with one exercise
type; for the pain task frames with pain -1 are dropped first, so a run that contains
them is split in two). Each instance is cut into fixed-length samples that start at
``0, stride, 2*stride, ...``; the last sample is the first one that reaches the
instance's end and is zero-padded past it (``mask`` False on padded frames). An
instance shorter than one sample gives one padded sample. A sample's label is the vote
of its real frames (:func:`majority_label`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lbp_motion.datasets.emopain.format import EmoPainRecording


def frame_label_shares(recordings: Sequence[EmoPainRecording]) -> dict[str, float]:
    """Shares (fractions of all frames) of each pain value (``no_pain``, ``low``,
    ``high``, ``unlabelled`` for -1) and of ``non_protective`` / ``protective``."""
    pain = np.concatenate([r.pain for r in recordings]) if recordings else np.zeros(0, np.int64)
    prot = (
        np.concatenate([r.protective for r in recordings]) if recordings else np.zeros(0, np.int64)
    )
    n = max(len(pain), 1)
    return {
        "no_pain": float((pain == 0).sum() / n),
        "low": float((pain == 1).sum() / n),
        "high": float((pain == 2).sum() / n),
        "unlabelled": float((pain == -1).sum() / n),
        "non_protective": float((prot == 0).sum() / n),
        "protective": float((prot == 1).sum() / n),
    }


# --------------------------------------------------------------------------------------
# segmentation and voting
# --------------------------------------------------------------------------------------


def exercise_instances(
    exercise: np.ndarray, keep: np.ndarray | None = None
) -> list[tuple[int, int, int]]:
    """Exercise instances: maximal runs of consecutive kept frames with one exercise type.

    Args:
        exercise: (T,) exercise type per frame.
        keep: (T,) bool, frames to use (None: all). A dropped frame ends a run, so every
            instance is contiguous in the recording.

    Returns:
        ``(start, stop, exercise)`` per instance, frames ``start:stop``, in time order.
    """
    exercise = np.asarray(exercise)
    t = len(exercise)
    keep = np.ones(t, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    if t == 0:
        return []
    boundary = np.ones(t, dtype=bool)
    boundary[1:] = (exercise[1:] != exercise[:-1]) | ~keep[:-1]
    out = []
    starts = np.flatnonzero(boundary & keep)
    for s in starts:
        e = s + 1
        while e < t and keep[e] and not boundary[e]:
            e += 1
        out.append((int(s), int(e), int(exercise[s])))
    return out


def segment_starts(length: int, segment_length: int, stride: int) -> np.ndarray:
    """Start offsets of the samples cut from an instance of ``length`` frames.

    Starts are ``0, stride, 2*stride, ...`` up to and including the first sample that
    reaches the instance's end (``start + segment_length >= length``); that sample is
    padded past the end. So there are ``1 + ceil(max(length - segment_length, 0) / stride)``
    samples; an instance shorter than one sample gives one. ``length <= 0`` gives none.
    """
    if segment_length <= 0 or stride <= 0:
        raise ValueError(
            f"segment length ({segment_length}) and stride ({stride}) must be positive"
        )
    if length <= 0:
        return np.zeros(0, dtype=np.int64)
    extra = max(length - segment_length, 0)
    n = 1 + -(-extra // stride)
    return np.arange(n, dtype=np.int64) * stride


def majority_label(
    labels: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    threshold: float | None = None,
) -> int:
    """The label of a sample from its frames' labels; padded frames never vote.

    Args:
        labels: (T,) int labels per frame.
        mask: (T,) bool, True for real frames (None: all real).
        threshold: None: the most frequent label among real frames (a tie goes to the
            smallest label). A number ``t`` (binary labels 0/1): 1 if MORE than ``t`` of
            the real frames are 1, else 0; with ``t = 0.5`` exactly half is 0.

    Raises ValueError when no frame is real.
    """
    labels = np.asarray(labels)
    if mask is not None:
        labels = labels[np.asarray(mask, dtype=bool)]
    if labels.size == 0:
        raise ValueError("majority_label: no real frames to vote")
    if threshold is not None:
        return int(np.count_nonzero(labels == 1) > threshold * labels.size)
    values, counts = np.unique(labels, return_counts=True)
    return int(values[np.argmax(counts)])
