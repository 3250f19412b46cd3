"""TUG keypoint data: a folder in the format of :mod:`.format` -> normalised windows."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from lbp_motion.datamodules.base import MotionDataModule
from lbp_motion.datasets.format import DataFormatError, read_labels, read_recording
from lbp_motion.datasets.layouts import get_layout
from lbp_motion.datasets.normalize import body_scale, check_scale, normalize_skeleton, visible_mask
from lbp_motion.datasets.splits import majority, read_split_file, split_subjects
from lbp_motion.datasets.windows import window_index
from lbp_motion.errors import ConfigError
from lbp_motion.transforms.balance import BalanceMethod
from lbp_motion.transforms.streams import (
    DEFAULT_STREAMS,
    Stream,
    check_streams,
    describe_features,
    num_features,
    stream_features,
)

log = logging.getLogger(__name__)

NORMALIZATION = "midhip-window-centre/torso-recording-scale/v1"


class PoseWindowDataset(torch.utils.data.Dataset):
    """Windows of normalised skeletons cut on the fly from per-recording arrays.

    ``index`` rows are ``(recording position, start frame)``; nothing is copied until a
    window is asked for. Items are dicts (see :mod:`.base`); ``x`` is (window,
    len(streams) * J * 3): the input streams of :mod:`.streams` (``["joint"]``: x', y',
    visible for every joint).

    A recording shorter than ``window`` (an index row of a padded short recording, see
    ``short_recordings`` of :class:`TUGDataModule`) is padded at the end to one window:
    the padded frames have zero features and ``mask`` False.

    A training dataset wrapped in :class:`~.augment.AugmentedDataset` has its raw
    windows augmented (before normalisation) by :meth:`augment_window`.
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
    ) -> None:
        self.keypoints = keypoints
        self.scales = scales
        self.labels = labels
        self.recording_ids = recording_ids
        self.index = index
        self.layout = get_layout(layout)
        self.window = window
        self.min_confidence = min_confidence
        self.streams = check_streams(streams, self.layout)

    @property
    def num_features(self) -> int:
        return num_features(self.layout, self.streams)

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

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r, start = (int(v) for v in self.index[i])
        kp = self.keypoints[r][start : start + self.window]
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
        x = stream_features(joints, self.layout, self.streams)
        return {
            "x": torch.from_numpy(x),
            "mask": torch.from_numpy(mask),
            "y": torch.tensor(self.labels[r], dtype=torch.long),
            "recording": torch.tensor(self.recording_ids[r], dtype=torch.long),
            "start": torch.tensor(start, dtype=torch.long),
        }


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
        return {
            "x": x,
            "mask": mask,
            "window_mask": window_mask,
            "y": items[0]["y"],
            "recording": items[0]["recording"],
            "start": torch.tensor(0, dtype=torch.long),
            "windows": torch.tensor(n, dtype=torch.long),
        }


class TUGDataModule(MotionDataModule):
    """Timed-up-and-go pose recordings -> 30-frame windows, split by subject.

    Args:
        root: dataset folder (docs/data-format.md). ``None``: the embedded synthetic
            TUG data, generated on first use into the cache (``synthetic`` are its
            settings, see :func:`lbp_motion.datasets.synthetic.generate_tug_dataset`).
        classes: class names in label order (TUG: low, medium, high severity).
        window: frames per window (SPEC: 30).
        stride: frames between window starts (SPEC: 5).
        min_confidence: joints below it are masked (zeros plus a visibility flag of 0).
        val_fraction, test_fraction: subject fractions of the seeded, label-stratified
            split (ignored with ``split_file``).
        split_seed: seed of that split.
        split_file: CSV ``subject,split`` fixing the split instead (docs/data-format.md).
        layout: joint layout of the recordings (every file must name it); with
            ``streams`` it fixes the number of features the model sees.
        streams: input streams concatenated per frame (:mod:`lbp_motion.transforms.streams`):
            any of ``joint``, ``bone``, ``joint_motion``, ``bone_motion``; the model's
            input width is ``len(streams) * joints * 3``. Default ``[joint]``: x', y',
            visible per joint.
        short_recordings: a recording shorter than ``window``: ``skip`` it (warned) or
            ``pad`` it at the end into one window whose padded frames are masked.
            Either way one line logs how many were padded and skipped.
        balance: resample the training split only: ``none``, ``smote``,
            ``kmeans_smote`` or ``undersample`` (see :mod:`lbp_motion.transforms.balance`).
        balance_seed: seed of the resampling.
        train_sites: train and validate on these sites' subjects only (the ``site``
            column); the test split stays the common one. For single-clinic baselines.
        predict_split: recordings ``lbp predict`` runs on: train, val, test or all.
        batch_size, num_workers: of the DataLoaders.
        synthetic: settings of the synthetic data when ``root`` is None.
        augment: skeleton augmentation of the training windows only, a list of
            transforms ``[{name: rotate, degrees: 15}, {name: mirror, p: 0.5}, ...]``
            (docs/data-format.md, "Augmentation"); None: none. Not with ``balance``.
        augment_seed: seed of the augmentation (item i of epoch e draws from
            ``default_rng([augment_seed, e, i])``).
        unit: what one sample is: ``window`` (default) or ``recording``: a bag of the
            recording's windows (:class:`RecordingBags`), for recording-level models
            (:class:`~lbp_motion.tasks.recording.RecordingTask`). Not with ``balance``.
        max_windows: with ``unit: recording``, the most windows a bag holds (evenly
            spaced over a longer recording); shorter bags are padded and masked.
    """

    def __init__(
        self,
        root: str | None = None,
        classes: list[str] = ["low", "medium", "high"],  # noqa: B006 - shown in --help
        window: int = 30,
        stride: int = 5,
        min_confidence: float = 0.3,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        split_file: str | None = None,
        layout: str = "coco17",
        streams: list[Stream] = ["joint"],  # noqa: B006 - shown in --help
        short_recordings: Literal["skip", "pad"] = "skip",
        balance: BalanceMethod = "none",
        balance_seed: int = 0,
        train_sites: list[str] | None = None,
        predict_split: str = "test",
        batch_size: int = 64,
        num_workers: int = 0,
        synthetic: dict[str, Any] | None = None,
        augment: list[dict[str, Any]] | None = None,
        augment_seed: int = 0,
        unit: Literal["window", "recording"] = "window",
        max_windows: int = 32,
    ) -> None:
        super().__init__(classes, batch_size, num_workers)
        if unit not in ("window", "recording"):
            raise ConfigError(f"data: unit={unit!r}; expected window or recording")
        if max_windows < 1:
            raise ConfigError(f"data: max_windows={max_windows}; expected at least 1")
        if unit == "recording" and balance != "none":
            raise ConfigError(
                f"data: balance={balance!r} resamples windows and cannot be combined with unit: recording; "
                "set balance: none (or use class_weighted_loss)"
            )
        if window <= 0 or stride <= 0:
            raise ConfigError(f"data: window={window} and stride={stride} must be positive")
        if predict_split not in {"train", "val", "test", "all"}:
            raise ConfigError(
                f"data: predict_split={predict_split!r}; expected train, val, test or all"
            )
        if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
            raise ConfigError(
                f"data: val_fraction={val_fraction} and test_fraction={test_fraction} must be >= 0 and sum below 1"
            )
        try:
            lay = get_layout(layout)
        except ValueError as err:
            raise ConfigError(f"data: layout: {err}") from None
        streams = check_streams(streams, lay)
        if short_recordings not in ("skip", "pad"):
            raise ConfigError(f"data: short_recordings={short_recordings!r}; expected skip or pad")
        self.save_hyperparameters()
        self.root = root
        self.window = window
        self.stride = stride
        self.min_confidence = min_confidence
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.split_file = split_file
        self.predict_split = predict_split
        self.synthetic = dict(synthetic or {})
        self.layout_name = layout
        self.streams = streams
        self.short_recordings = short_recordings
        self.balance = balance
        self.balance_seed = balance_seed
        self.init_augment(augment, augment_seed)
        self.train_sites = list(train_sites) if train_sites else None
        self.unit = unit
        self.max_windows = int(max_windows)
        self.fps: float | None = None
        self.subject_split: dict[str, str] = {}

    # -- interface ---------------------------------------------------------------
    @property
    def spec(self) -> dict[str, Any]:
        return {
            "num_features": num_features(get_layout(self.layout_name), self.streams),
            "classes": list(self.classes),
            "layout": self.layout_name,
            "window": self.window,
            "stride": self.stride,
            "min_confidence": self.min_confidence,
            "normalization": NORMALIZATION,
            "features": describe_features(self.streams),
            "streams": list(self.streams),
            "short_recordings": self.short_recordings,
            # only for recording bags: window-level checkpoints keep their description
            **(
                {"unit": "recording", "max_windows": self.max_windows}
                if self.unit == "recording"
                else {}
            ),
        }

    def describe(self) -> dict[str, Any]:
        return {**self.spec, "fps": self.fps}

    # -- reading -------------------------------------------------------------------
    def resolve_root(self) -> Path:
        if self.root is not None:
            # a folder of videos + labels.csv: extracted once into $LBP_CACHE/poses (docs/pose.md);
            # (a pose backend is loaded only when there are videos to extract)
            from lbp_motion.pose.extract import keypoints_for_video_folder

            return keypoints_for_video_folder(Path(self.root).expanduser())
        from lbp_motion.datasets.synthetic import ensure_synthetic_tug

        return ensure_synthetic_tug(**{"classes": tuple(self.classes), **self.synthetic})

    def setup(self, stage: str | None = None) -> None:
        if self._datasets:
            return
        root = self.resolve_root()
        rows = read_labels(root)
        labels_path = root / "labels.csv"
        listed = {r.recording for r in rows}
        on_disk = {p.stem for p in root.glob("*.npz")}
        extra = sorted(on_disk - listed)
        if extra:
            raise DataFormatError(
                f"{root / (extra[0] + '.npz')}: file has no row in {labels_path} "
                f"({len(extra)} such files); add a row or remove the file"
            )
        class_index = {c: i for i, c in enumerate(self.classes)}
        keypoints, scales, labels, names, subjects, sites = [], [], [], [], [], []
        fps_values = []
        too_short, invisible, padded = 0, 0, 0
        pad = self.short_recordings == "pad"
        for line, row in enumerate(rows, start=2):
            path = root / f"{row.recording}.npz"
            if row.label not in class_index:
                raise DataFormatError(
                    f"{labels_path}, line {line}: field 'label' is {row.label!r}; expected one of {self.classes}"
                )
            if not path.is_file():
                raise DataFormatError(
                    f"{labels_path}, line {line}: recording {row.recording!r} has no file {path.name}"
                )
            rec = read_recording(path)
            if rec.num_frames < self.window and not (pad and rec.num_frames > 0):
                log.warning(
                    "%s: %d frames, shorter than one window of %d; skipped (data.short_recordings: pad keeps it)",
                    path,
                    rec.num_frames,
                    self.window,
                )
                too_short += 1
                continue
            if rec.layout != self.layout_name:
                raise DataFormatError(
                    f"{path}: field 'layout' is {rec.layout!r} but the config says data.layout={self.layout_name!r}; "
                    "set data.layout or convert the recordings"
                )
            if not visible_mask(rec.keypoints, self.min_confidence).any():
                log.warning(
                    "%s: no joint is visible (confidence >= %g) in any of its %d frames; skipped",
                    path,
                    self.min_confidence,
                    rec.num_frames,
                )
                invisible += 1
                continue
            scale = body_scale(rec.keypoints, get_layout(rec.layout), self.min_confidence)
            check_scale(rec.keypoints, scale, min_confidence=self.min_confidence, source=str(path))
            keypoints.append(rec.keypoints)
            scales.append(scale)
            labels.append(class_index[row.label])
            names.append(row.recording)
            subjects.append(row.subject)
            sites.append(row.site)
            fps_values.append(rec.fps)
            padded += rec.num_frames < self.window
        if padded or too_short:
            (log.warning if too_short else log.info)(
                "TUG data %s: of %d recordings shorter than one window of %d frames, %d padded into one "
                "masked window and %d skipped (data.short_recordings=%s)",
                root,
                padded + too_short,
                self.window,
                padded,
                too_short,
                self.short_recordings,
            )
        if not keypoints and not invisible:
            raise DataFormatError(f"{root}: no recording has at least {self.window} frames")
        if not keypoints:
            raise DataFormatError(
                f"{root}: no usable recording: {invisible} have no visible joint (confidence >= "
                f"{self.min_confidence:g}) and {too_short} are shorter than {self.window} frames"
            )
        self.fps = float(np.median(fps_values))
        self.recording_names = names
        self.recording_subjects = subjects
        self.recording_sites = sites
        labels_arr = np.asarray(labels, dtype=np.int64)
        self.subject_split = self._split(subjects, labels_arr)
        lengths = [len(k) for k in keypoints]
        index = window_index(lengths, self.window, self.stride, pad_short=pad)
        side = np.array([self.subject_split[s] for s in subjects])
        pooled_train = labels_arr[side == "train"]  # before train_sites, for the two-class check
        if self.train_sites is not None:
            known = {s for s in sites if s is not None}
            unknown = sorted(set(self.train_sites) - known)
            if unknown:
                raise ConfigError(
                    f"data: train_sites={self.train_sites}; sites {unknown} are not in labels.csv ({sorted(known)})"
                )
            elsewhere = np.array([s not in self.train_sites for s in sites]) & (side != "test")
            side[elsewhere] = "unused"
        common = dict(
            layout=self.layout_name,
            window=self.window,
            min_confidence=self.min_confidence,
            streams=self.streams,
        )
        ids = np.arange(len(names), dtype=np.int64)
        scales_arr = np.asarray(scales, dtype=np.float32)

        def subset(mask: np.ndarray) -> PoseWindowDataset | RecordingBags:
            windows = PoseWindowDataset(
                keypoints, scales_arr, labels_arr, ids, index[mask[index[:, 0]]], **common
            )
            return RecordingBags(windows, self.max_windows) if self.unit == "recording" else windows

        for split in ("train", "val", "test"):
            self._datasets[split] = subset(side == split)
        predict = (
            np.ones(len(names), bool) if self.predict_split == "all" else side == self.predict_split
        )
        self._datasets["predict"] = subset(predict)
        self.finish_train_split(stage, pooled_train if self.train_sites is not None else None)
        log.info(
            "TUG data %s: %d recordings, %s %ss (train/val/test)",
            root,
            len(names),
            [len(self._datasets[s]) for s in ("train", "val", "test")],
            self.unit,
        )

    def _split(self, subjects: list[str], labels: np.ndarray) -> dict[str, str]:
        unique = sorted(set(subjects))
        if self.split_file:
            return read_split_file(self.split_file, unique)
        per_subject: dict[str, list[str]] = {}
        for s, y in zip(subjects, labels):
            per_subject.setdefault(s, []).append(self.classes[y])
        subject_labels = {s: majority(v) for s, v in per_subject.items()}
        return split_subjects(
            subject_labels,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            seed=self.split_seed,
        )

    def train_subject_info(self) -> dict[str, Any]:
        real = self.real_train_dataset()
        rec = real.index[:, 0]
        subjects = np.asarray(self.recording_subjects, dtype=object)[rec]
        sites = [self.recording_sites[r] for r in rec]
        return {
            "subject": subjects,
            "label": [self.classes[y] for y in real.window_labels()],
            "site": None if any(s is None for s in sites) else sites,
        }

    def subjects(self) -> list[str]:
        """Sorted subject ids of the folder (reads labels.csv only)."""
        return sorted({row.subject for row in read_labels(self.resolve_root())})

    def subject_labels(self) -> dict[str, str]:
        """Each subject's most frequent recording label (for stratified folds)."""
        per_subject: dict[str, list[str]] = {}
        for row in read_labels(self.resolve_root()):
            per_subject.setdefault(row.subject, []).append(row.label)
        return {s: majority(v) for s, v in per_subject.items()}

    def split_counts(self) -> dict[str, dict[str, int]]:
        """Samples (windows, or recordings with ``unit: recording``) per class in each split."""
        out = {}
        for split in ("train", "val", "test"):
            counts = Counter(self._datasets[split].window_labels().tolist())
            out[split] = {c: counts.get(i, 0) for i, c in enumerate(self.classes)}
        return out
