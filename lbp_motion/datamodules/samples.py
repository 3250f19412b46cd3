"""The torch Datasets the DataModules serve, one sample per item: windows of TUG
recordings (:class:`PoseWindowDataset`), bags of a recording's windows
(:class:`RecordingBags`) and EmoPain segments (:class:`EmoPainSegmentDataset`). They
cut samples on the fly from per-recording arrays; nothing is read from disk here.

Importable from their DataModules' modules too (``lbp_motion.datamodules.tug`` and
``lbp_motion.datamodules.emopain``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lbp_motion.datasets.layouts import get_layout
from lbp_motion.datasets.normalize import normalize_skeleton, visible_mask
from lbp_motion.transforms.streams import (
    DEFAULT_STREAMS,
    RECORDING_STATS,
    check_streams,
    frame_features,
    num_features,
    stream_features,
    with_recording_stats,
)


class PoseWindowDataset(torch.utils.data.Dataset):
    """Windows of normalised skeletons cut on the fly from per-recording arrays.

    ``index`` rows are ``(recording position, start frame)``; nothing is copied until a
    window is asked for. Items are dicts (see :mod:`.base`); ``x`` is (window,
    :func:`~lbp_motion.transforms.streams.num_features`): the input streams of
    :mod:`~lbp_motion.transforms.streams` (``["joint"]``: x', y', visible for every
    joint).

    With the ``recording_stats`` stream, every window of a recording also carries the
    mean window statistics of all that recording's windows in ``index``
    (:meth:`recording_stats`), computed once per recording from windows that are never
    augmented.

    A recording shorter than ``window`` (an index row of a padded short recording, see
    ``short_recordings`` of :class:`TUGDataModule`) is padded at the end to one window:
    the padded frames have zero features and ``mask`` False.

    A training dataset wrapped in :class:`~.augment.AugmentedDataset` has its raw
    windows augmented (before normalisation) by :meth:`augment_window`.

    With ``subject_ids`` (one integer per recording), items also carry ``subject``
    (read by :class:`~lbp_motion.tasks.subject_invariant.SubjectInvariantTask`).
    """

    transform = None  # the augmentation Pipeline, set by AugmentedDataset
    _rng = None  # the generator of the item being augmented; None: no augmentation

    def __init__(
        self,
        keypoints: list[np.ndarray],
        scales: np.ndarray,
        labels: np.ndarray,
        recording_ids: np.ndarray,
        index: np.ndarray,
        *,
        layout: str,
        window: int,
        min_confidence: float,
        streams: Sequence[str] = DEFAULT_STREAMS,
        subject_ids: np.ndarray | None = None,
    ) -> None:
        self.keypoints = keypoints
        self.subject_ids = subject_ids
        self.scales = scales
        self.labels = labels
        self.recording_ids = recording_ids
        self.index = index
        self.layout = get_layout(layout)
        self.window = window
        self.min_confidence = min_confidence
        self.streams = check_streams(streams, self.layout)
        self._recording_stats: dict[int, np.ndarray] = {}

    @property
    def num_features(self) -> int:
        return num_features(self.layout, self.streams)

    @property
    def frame_features(self) -> int:
        """The leading channels of ``x`` computed frame by frame (the rest, if any, is
        the ``recording_stats`` stream); the statistics baselines read these only."""
        return frame_features(self.layout, self.streams)

    def __len__(self) -> int:
        return len(self.index)

    def window_labels(self) -> np.ndarray:
        return self.labels[self.index[:, 0]] if len(self.index) else np.zeros(0, dtype=np.int64)

    def augment_window(self, kp: np.ndarray, r: int, start: int) -> np.ndarray:
        """The raw window ``kp`` (window, J, 3) of recording ``r`` at ``start``; when an
        item is being augmented, the pipeline's window instead (read anywhere in the
        recording by the temporal transforms, then transformed in pixels). A window
        that does not fit in its recording (a short recording padded to the window) is
        resampled within ``kp`` itself."""
        if self._rng is None:
            return kp
        source = self.keypoints[r]
        if start + self.window > len(source):
            source, start = kp, 0
        return self.transform.keypoints(  # a short recording keeps its length (then padded)
            source,
            start,
            len(kp),
            self._rng,
            scale=float(self.scales[r]),
            flip_pairs=self.layout.flip_pairs,
        )

    def recording_stats(self, r: int) -> np.ndarray:
        """(3F,) the mean over recording ``r``'s windows in ``index`` of their window
        statistics (per frame-stream channel: mean, standard deviation, mean absolute
        motion over real frames; :func:`~lbp_motion.models.statistics.window_statistics`),
        never augmented; cached."""
        if r not in self._recording_stats:
            from lbp_motion.models.statistics import window_statistics

            starts = self.index[self.index[:, 0] == r, 1]
            frames = [self.frames(r, int(start), augment=False) for start in starts]
            x = torch.from_numpy(np.stack([f[0] for f in frames])).double()
            mask = torch.from_numpy(np.stack([f[1] for f in frames]))
            stats = window_statistics(x, mask).mean(dim=0)
            self._recording_stats[r] = stats.numpy().astype(np.float32)
        return self._recording_stats[r]

    def frames(self, r: int, start: int, *, augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The frame streams (window, F) and real-frame mask (window,) of the window of
        recording ``r`` at ``start``; augmented when an item is being augmented and
        ``augment``."""
        kp = self.keypoints[r][start : start + self.window]
        if augment:
            kp = self.augment_window(kp, r, start)
        joints = normalize_skeleton(
            kp, self.layout, min_confidence=self.min_confidence, scale=self.scales[r]
        )
        mask = visible_mask(kp, self.min_confidence).any(axis=1)
        if len(kp) < self.window:  # a short recording padded into one window: zeros, masked
            pad = self.window - len(kp)
            joints = np.concatenate(
                [joints, np.zeros((pad, *joints.shape[1:]), dtype=joints.dtype)]
            )
            mask = np.concatenate([mask, np.zeros(pad, dtype=bool)])
        return stream_features(joints, self.layout, self.streams), mask

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r, start = (int(v) for v in self.index[i])
        x, mask = self.frames(r, start)
        if RECORDING_STATS in self.streams:
            x = with_recording_stats(x, self.recording_stats(r), mask)
        out = {
            "x": torch.from_numpy(x),
            "mask": torch.from_numpy(mask),
            "y": torch.tensor(self.labels[r], dtype=torch.long),
            "recording": torch.tensor(self.recording_ids[r], dtype=torch.long),
            "start": torch.tensor(start, dtype=torch.long),
        }
        if self.subject_ids is not None:
            out["subject"] = torch.tensor(self.subject_ids[r], dtype=torch.long)
        return out


class RecordingBags(torch.utils.data.Dataset):
    """The recordings of a :class:`PoseWindowDataset`, each one item: a bag of its
    windows (``unit: recording`` of :class:`TUGDataModule`).

    Item ``k`` is recording ``k`` (in recording order): ``x`` (max_windows, window, F),
    ``mask`` (max_windows, window) frame masks, ``window_mask`` (max_windows,) True for
    real windows, ``y``, ``recording``, ``start`` (0) and ``windows`` (the number of
    real windows). A recording with more than ``max_windows`` windows is read at
    ``max_windows`` evenly spaced window starts (first and last included); a shorter
    one is padded with zero windows whose masks are False. Every bag has the same
    shape, so the default collate (and any loader, federated too) batches them.

    ``index`` rows are ``(recording position, 0)`` and ``window_labels()`` the
    recordings' labels, as a window dataset's, so splits, class weights and federated
    partitions count recordings. Under :class:`~.augment.AugmentedDataset` every window
    of a bag is augmented with draws from the bag's generator.
    """

    _rng = None  # set by AugmentedDataset while an item is read

    def __init__(self, windows: PoseWindowDataset, max_windows: int) -> None:
        self.windows = windows
        self.max_windows = int(max_windows)
        rec = windows.index[:, 0] if len(windows.index) else np.zeros(0, dtype=np.int64)
        positions = np.unique(rec)
        self.rows = [np.flatnonzero(rec == r) for r in positions]
        self.index = np.stack([positions, np.zeros_like(positions)], axis=1).astype(np.int64)

    @property
    def transform(self):
        return self.windows.transform

    @transform.setter
    def transform(self, pipeline) -> None:  # AugmentedDataset hands the pipeline to the windows
        self.windows.transform = pipeline

    @property
    def num_features(self) -> int:
        return self.windows.num_features

    @property
    def frame_features(self) -> int:
        return self.windows.frame_features

    def __len__(self) -> int:
        return len(self.rows)

    def window_labels(self) -> np.ndarray:
        return (
            self.windows.labels[self.index[:, 0]]
            if len(self.index)
            else np.zeros(0, dtype=np.int64)
        )

    def chosen_windows(self, k: int) -> np.ndarray:
        """Rows of the window dataset that make bag ``k`` (at most ``max_windows``)."""
        rows = self.rows[k]
        if len(rows) > self.max_windows:
            rows = rows[np.linspace(0, len(rows) - 1, self.max_windows).round().astype(int)]
        return rows

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        rows = self.chosen_windows(k)
        self.windows._rng = self._rng
        try:
            items = [self.windows[int(i)] for i in rows]
        finally:
            self.windows._rng = None
        n, w = len(items), self.windows.window
        x = torch.zeros(self.max_windows, w, items[0]["x"].shape[-1], dtype=items[0]["x"].dtype)
        mask = torch.zeros(self.max_windows, w, dtype=torch.bool)
        x[:n] = torch.stack([it["x"] for it in items])
        mask[:n] = torch.stack([it["mask"] for it in items])
        window_mask = torch.arange(self.max_windows) < n
        out = {
            "x": x,
            "mask": mask,
            "window_mask": window_mask,
            "y": items[0]["y"],
            "recording": items[0]["recording"],
            "start": torch.tensor(0, dtype=torch.long),
            "windows": torch.tensor(n, dtype=torch.long),
        }
        if "subject" in items[0]:
            out["subject"] = items[0]["subject"]
        return out


class EmoPainSegmentDataset(torch.utils.data.Dataset):
    """Fixed-length samples cut from per-recording feature arrays (no copies until an
    item is asked for).

    ``index`` rows are ``(recording position, start frame, real frames)``; the sample is
    ``features[r][start:start + real]`` zero-padded to ``length`` frames. Items are the
    batch dict of :mod:`.base` plus ``aux`` (exercise type) and ``subject``.

    A training dataset wrapped in :class:`~.augment.AugmentedDataset` has its samples'
    real frames augmented by :meth:`augment_frames` (``augment_context``: the keyword
    arguments of :func:`~.augment.augment_features`, set by the DataModule).
    """

    transform = None  # the augmentation Pipeline, set by AugmentedDataset
    _rng = None  # the generator of the item being augmented; None: no augmentation
    augment_context: dict[str, Any] = {}

    def __init__(
        self,
        features: list[np.ndarray],
        index: np.ndarray,
        labels: np.ndarray,
        aux: np.ndarray,
        recording_ids: np.ndarray,
        subject_ids: np.ndarray,
        *,
        length: int,
        frame_targets: list[np.ndarray] | None = None,
    ) -> None:
        self.features = features
        self.index = np.asarray(index, dtype=np.int64).reshape(-1, 3)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.aux = np.asarray(aux, dtype=np.int64)
        self.recording_ids = np.asarray(recording_ids, dtype=np.int64)
        self.subject_ids = np.asarray(subject_ids, dtype=np.int64)
        self.length = length
        self.num_features = int(features[0].shape[1]) if features else 0
        self.frame_targets = frame_targets

    def __len__(self) -> int:
        return len(self.index)

    def window_labels(self) -> np.ndarray:
        """(N,) int64 sample labels (the name TUG's dataset uses)."""
        return self.labels

    def augment_frames(self, frames: np.ndarray, r: int, start: int) -> np.ndarray:
        """The real frames (real, F) of a sample of recording ``r`` at ``start``; when an
        item is being augmented, the pipeline's frames instead."""
        if self._rng is None:
            return frames
        from lbp_motion.transforms.augment import augment_features

        return augment_features(
            self.transform, self.features[r], start, len(frames), self._rng, **self.augment_context
        )

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r, start, real = (int(v) for v in self.index[i])
        x = np.zeros((self.length, self.num_features), dtype=np.float32)
        x[:real] = self.features[r][start : start + real]
        x[:real] = self.augment_frames(x[:real], r, start)
        mask = np.zeros(self.length, dtype=bool)
        mask[:real] = True
        out = {
            "x": torch.from_numpy(x),
            "mask": torch.from_numpy(mask),
            "y": torch.tensor(self.labels[i], dtype=torch.long),
            "aux": torch.tensor(self.aux[i], dtype=torch.long),
            "recording": torch.tensor(self.recording_ids[r], dtype=torch.long),
            "subject": torch.tensor(self.subject_ids[r], dtype=torch.long),
            "start": torch.tensor(start, dtype=torch.long),
        }
        if self.frame_targets is not None:
            frames = np.zeros(self.length, dtype=np.int64)
            frames[:real] = self.frame_targets[r][start : start + real]
            out["frame_protective"] = torch.from_numpy(frames)
        return out

    def tensors(self) -> dict[str, torch.Tensor]:
        """All samples stacked: ``x`` (N, T, F), ``mask`` (N, T), ``y``, ``aux``,
        ``recording``, ``subject``, ``start`` (N,)."""
        n = len(self)
        x = torch.zeros(n, self.length, self.num_features)
        mask = torch.zeros(n, self.length, dtype=torch.bool)
        for i, (r, start, real) in enumerate(self.index.tolist()):
            x[i, :real] = torch.from_numpy(self.features[r][start : start + real])
            mask[i, :real] = True
        r = self.index[:, 0]
        out = {
            "x": x,
            "mask": mask,
            "y": torch.from_numpy(self.labels.copy()),
            "aux": torch.from_numpy(self.aux.copy()),
            "recording": torch.from_numpy(self.recording_ids[r]),
            "subject": torch.from_numpy(self.subject_ids[r]),
            "start": torch.from_numpy(self.index[:, 1].copy()),
        }
        if self.frame_targets is not None:
            out["frame_protective"] = (
                torch.stack([self[i]["frame_protective"] for i in range(n)])
                if n
                else torch.zeros(0, self.length, dtype=torch.long)
            )
        return out
