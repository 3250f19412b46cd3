"""Sliding windows as index maps into per-recording arrays (never copies)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def window_starts(
    num_frames: int, length: int, stride: int, *, pad_short: bool = False
) -> np.ndarray:
    """Start frames of the windows ``[s, s + length)`` that fit in ``num_frames``.

    Starts are ``0, stride, 2 * stride, ...`` while the window ends inside the
    recording; a trailing part shorter than ``length`` is not used. A recording shorter
    than ``length`` gives no window, or with ``pad_short`` one window at 0 (whose
    frames past the recording's end the dataset pads and masks); an empty one none.
    """
    if length <= 0 or stride <= 0:
        raise ValueError(f"window length ({length}) and stride ({stride}) must be positive")
    if num_frames < length:
        return np.zeros(int(pad_short and num_frames > 0), dtype=np.int64)
    return np.arange(0, num_frames - length + 1, stride, dtype=np.int64)


def window_index(
    lengths: Sequence[int], length: int, stride: int, *, pad_short: bool = False
) -> np.ndarray:
    """(N, 2) int64 rows ``(recording position, start frame)`` over all recordings."""
    parts = [
        np.stack([np.full(len(s), r, dtype=np.int64), s], axis=1)
        for r, n in enumerate(lengths)
        if len(s := window_starts(int(n), length, stride, pad_short=pad_short))
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)
