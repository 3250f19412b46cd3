"""TUG keypoint data: a folder in the format of :mod:`.format` -> normalised windows."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from lbp_motion.datamodules.base import MotionDataModule
from lbp_motion.datamodules.samples import PoseWindowDataset as PoseWindowDataset  # re-exported
from lbp_motion.datamodules.samples import RecordingBags as RecordingBags  # re-exported
from lbp_motion.datasets.format import (
    DataFormatError,
    LabelRow,
    Recording,
    read_labels,
    read_recording,
)
from lbp_motion.datasets.layouts import get_layout
from lbp_motion.datasets.normalize import body_scale, check_scale, visible_mask
from lbp_motion.datasets.splits import majority, read_split_file, split_subjects
from lbp_motion.datasets.windows import window_index
from lbp_motion.errors import ConfigError
from lbp_motion.transforms.balance import BalanceMethod
from lbp_motion.transforms.streams import (
    Stream,
    check_streams,
    describe_features,
    num_features,
)

log = logging.getLogger(__name__)

NORMALIZATION = "midhip-window-centre/torso-recording-scale/v1"


@dataclass
class TUGRecordings:
    """The usable recordings of a TUG folder, in ``labels.csv`` order (what
    :meth:`TUGDataModule.read_recordings` returns): keypoints (T, J, 3), body scale,
    class index, name, subject, site (None without a ``site`` column) and fps of each."""

    keypoints: list[np.ndarray] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    sites: list[str | None] = field(default_factory=list)
    fps: list[float] = field(default_factory=list)

    def add(self, row: LabelRow, label: int, rec: Recording, scale: float) -> None:
        self.keypoints.append(rec.keypoints)
        self.scales.append(scale)
        self.labels.append(label)
        self.names.append(row.recording)
        self.subjects.append(row.subject)
        self.sites.append(row.site)
        self.fps.append(rec.fps)


def _refuse_unlisted(root: Path, rows: list[LabelRow]) -> None:
    """DataFormatError for a recording file of ``root`` without a row in labels.csv."""
    listed = {r.recording for r in rows}
    on_disk = {p.stem for p in root.glob("*.npz")}
    extra = sorted(on_disk - listed)
    if extra:
        raise DataFormatError(
            f"{root / (extra[0] + '.npz')}: file has no row in {root / 'labels.csv'} "
            f"({len(extra)} such files); add a row or remove the file"
        )


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
            any of ``joint``, ``bone``, ``joint_motion``, ``bone_motion`` (frame streams,
            ``F = joints * 3`` channels each), then optionally ``recording_stats`` (the
            recording's mean window statistics in every frame, ``3 * F`` more channels;
            for labels of the person). The model's input width follows. Default
            ``[joint]``: x', y', visible per joint.
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
        """Read the folder once (:meth:`read_recordings`), split it by subject
        (:meth:`assign_sides`) and build the datasets of every split
        (:meth:`build_datasets`); a later call does nothing."""
        if self._datasets:
            return
        root = self.resolve_root()
        data = self.read_recordings(root)
        self.fps = float(np.median(data.fps))
        self.recording_names = data.names
        self.recording_subjects = data.subjects
        self.recording_sites = data.sites
        labels = np.asarray(data.labels, dtype=np.int64)
        self.subject_split = self._split(data.subjects, labels)
        side, pooled_train = self.assign_sides(data.subjects, data.sites, labels)
        self._datasets.update(self.build_datasets(data, side))
        self.finish_train_split(stage, pooled_train if self.train_sites is not None else None)
        log.info(
            "TUG data %s: %d recordings, %s %ss (train/val/test)",
            root,
            len(data.names),
            [len(self._datasets[s]) for s in ("train", "val", "test")],
            self.unit,
        )

    def read_recordings(self, root: Path) -> TUGRecordings:
        """The usable recordings of ``root`` in ``labels.csv`` order. A recording shorter
        than one window (unless ``short_recordings: pad``) or without a visible joint is
        skipped with a warning; :class:`DataFormatError` for a file without a row, a row
        without a file or with an unknown label, another layout, or no usable recording."""
        rows = read_labels(root)
        _refuse_unlisted(root, rows)
        class_index = {c: i for i, c in enumerate(self.classes)}
        out = TUGRecordings()
        too_short, invisible, padded = 0, 0, 0
        for line, row in enumerate(rows, start=2):
            path = root / f"{row.recording}.npz"
            if row.label not in class_index:
                raise DataFormatError(
                    f"{root / 'labels.csv'}, line {line}: field 'label' is {row.label!r}; expected one of {self.classes}"
                )
            if not path.is_file():
                raise DataFormatError(
                    f"{root / 'labels.csv'}, line {line}: recording {row.recording!r} has no file {path.name}"
                )
            rec = read_recording(path)
            skip = self._skip(path, rec)
            too_short += skip == "short"
            invisible += skip == "invisible"
            if skip is None:
                scale = body_scale(rec.keypoints, get_layout(rec.layout), self.min_confidence)
                check_scale(
                    rec.keypoints, scale, min_confidence=self.min_confidence, source=str(path)
                )
                out.add(row, class_index[row.label], rec, scale)
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
        if not out.keypoints and not invisible:
            raise DataFormatError(f"{root}: no recording has at least {self.window} frames")
        if not out.keypoints:
            raise DataFormatError(
                f"{root}: no usable recording: {invisible} have no visible joint (confidence >= "
                f"{self.min_confidence:g}) and {too_short} are shorter than {self.window} frames"
            )
        return out

    def _skip(self, path: Path, rec: Recording) -> Literal["short", "invisible"] | None:
        """Why ``rec`` is skipped (warned about), or None to keep it; DataFormatError for
        a recording of another layout."""
        if rec.num_frames < self.window and not (
            self.short_recordings == "pad" and rec.num_frames > 0
        ):
            log.warning(
                "%s: %d frames, shorter than one window of %d; skipped (data.short_recordings: pad keeps it)",
                path,
                rec.num_frames,
                self.window,
            )
            return "short"
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
            return "invisible"
        return None

    def assign_sides(
        self, subjects: list[str], sites: list[str | None], labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each recording's split from :attr:`subject_split` (``train``, ``val``, ``test``;
        with ``train_sites``, ``unused`` for the train and validation recordings of other
        sites), and the labels of the training split before ``train_sites`` (for the
        two-class check). ConfigError for a site of ``train_sites`` not in labels.csv."""
        side = np.array([self.subject_split[s] for s in subjects])
        pooled_train = labels[side == "train"]  # before train_sites, for the two-class check
        if self.train_sites is not None:
            known = {s for s in sites if s is not None}
            unknown = sorted(set(self.train_sites) - known)
            if unknown:
                raise ConfigError(
                    f"data: train_sites={self.train_sites}; sites {unknown} are not in labels.csv ({sorted(known)})"
                )
            elsewhere = np.array([s not in self.train_sites for s in sites]) & (side != "test")
            side[elsewhere] = "unused"
        return side, pooled_train

    def build_datasets(
        self, data: TUGRecordings, side: np.ndarray
    ) -> dict[str, PoseWindowDataset | RecordingBags]:
        """The ``train``, ``val``, ``test`` and ``predict`` datasets of the recordings
        ``data`` whose splits are ``side`` (windows, or bags with ``unit: recording``)."""
        lengths = [len(k) for k in data.keypoints]
        pad = self.short_recordings == "pad"
        index = window_index(lengths, self.window, self.stride, pad_short=pad)
        labels = np.asarray(data.labels, dtype=np.int64)
        ids = np.arange(len(data.names), dtype=np.int64)
        # subjects as integers (sorted names), for tasks that read who is walking
        subject_ids = np.unique(np.asarray(data.subjects, dtype=str), return_inverse=True)[1]
        scales = np.asarray(data.scales, dtype=np.float32)

        def subset(mask: np.ndarray) -> PoseWindowDataset | RecordingBags:
            windows = PoseWindowDataset(
                data.keypoints,
                scales,
                labels,
                ids,
                index[mask[index[:, 0]]],
                layout=self.layout_name,
                window=self.window,
                min_confidence=self.min_confidence,
                streams=self.streams,
                subject_ids=subject_ids.astype(np.int64),
            )
            return RecordingBags(windows, self.max_windows) if self.unit == "recording" else windows

        out = {split: subset(side == split) for split in ("train", "val", "test")}
        every = np.ones(len(data.names), bool)
        out["predict"] = subset(
            every if self.predict_split == "all" else side == self.predict_split
        )
        return out

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

    def split_by_site(self, split: str) -> dict[str, torch.utils.data.Dataset]:
        """The windows (or bags) of ``split`` of each site in labels.csv's ``site``
        column, sorted by site; empty without that column."""
        if not self._datasets:
            self.setup("test")
        if any(s is None for s in self.recording_sites):
            return {}
        dataset = self._datasets[split]
        sites = np.asarray(self.recording_sites, dtype=object)[dataset.index[:, 0]]
        return {
            site: torch.utils.data.Subset(dataset, np.flatnonzero(sites == site).tolist())
            for site in sorted(set(sites.tolist()))
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
