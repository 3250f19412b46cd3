"""The EmoPain DataModule: PLAAN's segments of a folder of EmoPain files
(:mod:`lbp_motion.datasets.emopain`), standardised, split by subject, for the pain or
the protective-behaviour task."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lbp_motion.datamodules.base import MotionDataModule
from lbp_motion.datamodules.emopain_settings import (
    check_augment,
    check_settings,
    sample_geometry,
    task_classes,
)
from lbp_motion.datamodules.samples import (  # re-exported
    EmoPainSegmentDataset as EmoPainSegmentDataset,
)
from lbp_motion.datasets.emopain.features import FeatureSet, feature_names, frame_features
from lbp_motion.datasets.emopain.format import (
    EXERCISES,
    NUM_JOINTS,
    EmoPainRecording,
    list_emopain_files,
    parse_emopain_name,
    read_emopain,
)
from lbp_motion.datasets.emopain.segments import exercise_instances, majority_label, segment_starts
from lbp_motion.datasets.format import DataFormatError
from lbp_motion.datasets.layouts import EMOPAIN22
from lbp_motion.datasets.splits import read_split_file, split_subjects
from lbp_motion.errors import ConfigError
from lbp_motion.transforms.balance import BalanceMethod

log = logging.getLogger(__name__)

_STANDARDIZATION = "per-feature mean/std over the real frames of training instances"


def _feature_stats(
    feats: list[np.ndarray], spans: list[list[tuple[int, int]]], train: list[bool]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-feature mean and std (float32; a std of about 0 becomes 1) over the frames
    inside ``spans`` of the recordings marked ``train``; None without such frames."""
    num_f = feats[0].shape[1] if feats else 0
    total = np.zeros(num_f)
    total_sq = np.zeros(num_f)
    count = 0
    for f_rec, rec_spans, is_train in zip(feats, spans, train, strict=True):
        if not is_train:
            continue
        used = np.zeros(len(f_rec), dtype=bool)
        for s, real in rec_spans:
            used[s : s + real] = True
        f = f_rec[used].astype(np.float64)
        total += f.sum(axis=0)
        total_sq += (f * f).sum(axis=0)
        count += len(f)
    if count == 0:
        return None
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    std = np.where(std > 1e-8 * np.maximum(np.abs(mean), 1.0), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


class EmoPainDataModule(MotionDataModule):
    """EmoPain body-movement files -> exercise-wise, fixed-length samples (PLAAN).

    The folder (docs/emopain.md) holds ``train/`` and ``validation/`` with one
    ``<P|C><digits><N|D>.mat`` (or ``.csv``) per participant and level. Every batch is the
    base batch dict (``x`` (B, T, F) float32, ``mask`` (B, T) bool, ``y``, ``recording``,
    ``start`` (B,) int64) plus ``aux`` (B,) int64, the exercise type of the sample's
    instance (0-8, names in ``spec["aux_classes"]``), and ``subject`` (B,) int64, an
    index into :attr:`subject_names`. ``start`` is the sample's first frame in its file.

    Args:
        root: dataset folder. ``None``: synthetic EmoPain-format data, generated on first
            use into the cache (``synthetic`` are the settings of
            :func:`lbp_motion.datasets.synthetic.generate_emopain_dataset`).
        task: ``pain`` (classes no_pain / low / high, from column 72; frames with pain -1
            are dropped) or ``protective`` (non_protective / protective, column 73).
        classes: fixed by the task; give them only to check (a different list is an error).
        features: ``coords`` (22 joints x XYZ = 66, joint-major), ``emg`` (4) or ``both`` (70).
        joint_angles: add 24 joint angles in radians (:data:`ANGLE_TRIPLETS`).
        joint_energies: add 22 per-joint squared speeds ((units/s)^2), a kinetic-energy proxy.
        standardize: standardise each feature with mean/std fitted on the training
            split's real frames (padded frames stay 0).
        segment_length: pain task, frames per segment (SPEC: 180).
        segment_stride: pain task, frames between segment starts; None = ``segment_length``
            (non-overlapping).
        window_seconds, overlap: protective task, window length in seconds (SPEC: 3 s) and
            overlap fraction in [0, 1) (SPEC: 0.75); window = round(window_seconds * fps)
            frames, stride = max(1, round(window * (1 - overlap))).
        fps: frame rate of the files (60 Hz); used for windows in seconds and energies.
        vote_threshold: protective task, a window is protective iff MORE than this
            fraction of its real frames is protective.
        drop_unlabelled: protective task, also drop frames with pain -1 before cutting
            instances (the pain task always drops them).
        split: ``challenge`` (``train/`` -> train; ``validation/`` -> val and, with
            ``test_from="validation"``, also test) or ``subject`` (files of ``train/`` and
            ``validation/``, or of ``root`` itself without them, pooled and split by
            subject, seeded and stratified by group patient/control).
        test_from: with ``split="challenge"``: ``validation`` (test = the validation
            folder) or ``test`` (a labelled ``test/`` folder).
        val_fraction, test_fraction, split_seed: of ``split="subject"``.
        split_file: CSV ``subject,split`` (as in docs/data-format.md); replaces ``split``
            (the files are pooled as for ``subject``).
        balance: resample the training split only: ``none``, ``smote``,
            ``kmeans_smote`` or ``undersample`` (see :mod:`lbp_motion.transforms.balance`).
        balance_seed: seed of the resampling.
        predict_split: samples ``lbp predict`` runs on: train, val, test or all.
        batch_size, num_workers: of the DataLoaders.
        synthetic: settings of the synthetic data when ``root`` is None.
        keep_classes: keep only the samples whose (voted) label is one of these classes
            of the task, e.g. ``[low, high]`` for a pain-only estimator (PLAAN's
            hierarchical stage 2); ``classes`` and the labels then follow this list
            (``low`` -> 0, ``high`` -> 1) in every split. The standardisation is still
            fitted on all training samples, so a model trained on the kept classes sees
            features scaled as in a run on all classes. None keeps all.
        frame_protective: add ``frame_protective`` (B, T) int64 to every batch: the
            per-frame protective-behaviour label (column 73, 0 on padded frames), for
            tasks that supervise a per-frame protective detector (the cascade).
        augment: skeleton augmentation of the training samples only, a list of
            transforms as for TUG (docs/data-format.md, "Augmentation"; docs/emopain.md
            says which apply). Spatial transforms need ``features`` coords or both and
            no joint angles or energies; temporal ones (speed, crop) not with
            ``frame_protective``; none with ``balance``.
        augment_seed: seed of the augmentation.
    """

    def __init__(
        self,
        root: str | None = None,
        task: Literal["pain", "protective"] = "pain",
        classes: list[str] | None = None,
        features: FeatureSet = "both",
        joint_angles: bool = False,
        joint_energies: bool = False,
        standardize: bool = True,
        segment_length: int = 180,
        segment_stride: int | None = None,
        window_seconds: float = 3.0,
        overlap: float = 0.75,
        fps: float = 60.0,
        vote_threshold: float = 0.5,
        drop_unlabelled: bool = False,
        split: Literal["challenge", "subject"] = "challenge",
        test_from: Literal["validation", "test"] = "validation",
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        split_file: str | None = None,
        balance: BalanceMethod = "none",
        balance_seed: int = 0,
        predict_split: str = "test",
        batch_size: int = 64,
        num_workers: int = 0,
        synthetic: dict[str, Any] | None = None,
        keep_classes: list[str] | None = None,
        frame_protective: bool = False,
        augment: list[dict[str, Any]] | None = None,
        augment_seed: int = 0,
    ) -> None:
        fixed, kept = task_classes(task, classes, keep_classes)
        super().__init__(kept, batch_size, num_workers)
        self.keep_classes = keep_classes
        self.frame_protective = frame_protective
        #: voted label of the task -> label of the kept classes
        self._label_map = {fixed.index(c): i for i, c in enumerate(kept)}
        self.save_hyperparameters()
        check_settings(**self.hparams)
        self.root = root
        self.task = task
        self.features = features
        self.joint_angles = joint_angles
        self.joint_energies = joint_energies
        self.standardize = standardize
        self.fps = float(fps)
        self.vote_threshold = vote_threshold
        self.drop_unlabelled = drop_unlabelled
        self.split = split
        self.test_from = test_from
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.split_file = split_file
        self.balance = balance
        self.balance_seed = balance_seed
        self.init_augment(augment, augment_seed)
        check_augment(
            self.augment_pipeline, features, joint_angles, joint_energies, frame_protective
        )
        self.predict_split = predict_split
        self.synthetic = dict(synthetic or {})
        self.window_seconds = window_seconds
        self.overlap = overlap
        self.sample_length, self.sample_stride = sample_geometry(**self.hparams)
        self.segment_length = segment_length
        self.segment_stride = segment_stride
        self.subject_names: list[str] = []
        self.recording_subjects: list[str] = []
        self.recording_groups: list[str] = []
        self.subject_split: dict[str, str] = {}
        self.split_subjects: dict[str, list[str]] = {}
        self.feature_mean: np.ndarray | None = None
        self.feature_std: np.ndarray | None = None

    # -- interface ---------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return feature_names(self.features, self.joint_angles, self.joint_energies)

    @property
    def spec(self) -> dict[str, Any]:
        return {
            "num_features": len(self.feature_names),
            "classes": list(self.classes),
            "aux_classes": list(EXERCISES),
            "task": self.task,
            "features": self.features,
            "joint_angles": self.joint_angles,
            "joint_energies": self.joint_energies,
            "standardization": _STANDARDIZATION if self.standardize else "none",
            "segment_length": self.sample_length,
            "segment_stride": self.sample_stride,
            "window_seconds": self.window_seconds if self.task == "protective" else None,
            "overlap": self.overlap if self.task == "protective" else None,
            "vote": (
                f"protective iff more than {self.vote_threshold:g} of real frames"
                if self.task == "protective"
                else "most frequent class of real frames"
            ),
            "fps": self.fps,
            "split": "file" if self.split_file else self.split,
        }

    def describe(self) -> dict[str, Any]:
        out = dict(self.spec)
        if self.feature_mean is not None:
            out["feature_mean"] = [float(v) for v in self.feature_mean]
            out["feature_std"] = [float(v) for v in self.feature_std]
        if self.split_subjects:
            out["subjects"] = {k: list(v) for k, v in self.split_subjects.items()}
        return out

    def dataset(self, split: str) -> EmoPainSegmentDataset:
        """The samples of ``split`` (``train``, ``val``, ``test`` or ``predict``); reads the
        data on first use. ``dataset(split).tensors()`` stacks them."""
        if not self._datasets:
            self.setup("fit")
        if split not in self._datasets:
            raise ConfigError(
                f"data: unknown split {split!r}; expected one of {sorted(self._datasets)}"
            )
        return self._datasets[split]

    # -- reading -------------------------------------------------------------------
    def resolve_root(self) -> Path:
        if self.root is not None:
            return Path(self.root).expanduser()
        from lbp_motion.datasets.synthetic import ensure_synthetic_emopain

        return ensure_synthetic_emopain(**self.synthetic)

    def _folders(self, root: Path) -> dict[str, Path]:
        """Folder of each source: ``train``/``validation``/``test`` (challenge) or the
        pooled folders (``pooled:<name>``)."""
        if not root.is_dir():
            raise DataFormatError(f"{root}: data folder not found")
        if self.split_file or self.split == "subject":
            subs = [root / n for n in ("train", "validation") if (root / n).is_dir()]
            return {f"pooled:{p.name}": p for p in subs} or {"pooled:.": root}
        out = {}
        for name in ("train", "validation") + (("test",) if self.test_from == "test" else ()):
            if not (root / name).is_dir():
                raise DataFormatError(
                    f"{root / name}: folder not found; split='challenge' needs {root}/train and {root}/validation"
                    + (f" and {root}/test" if self.test_from == "test" else "")
                    + " (or use split='subject' for a flat folder)"
                )
            out[name] = root / name
        return out

    def _files(self, root: Path) -> dict[str, list[Path]]:
        files = {src: list_emopain_files(folder) for src, folder in self._folders(root).items()}
        seen: dict[str, Path] = {}
        for paths in files.values():
            for p in paths:
                if p.stem in seen:
                    raise DataFormatError(
                        f"{p}: recording {p.stem!r} also in {seen[p.stem]}; names must be unique"
                    )
                seen[p.stem] = p
        if not seen:
            raise DataFormatError(f"{root}: no .mat or .csv files found")
        return files

    def train_subject_info(self) -> dict[str, Any]:
        real = self.real_train_dataset()
        subjects = np.asarray(self.subject_names, dtype=object)[real.subject_ids[real.index[:, 0]]]
        return {
            "subject": subjects,
            "label": [self.classes[y] for y in real.window_labels()],
            "site": None,
        }

    def subjects(self) -> list[str]:
        """Sorted subject ids of the files the DataModule uses (file names only)."""
        files = self._files(self.resolve_root())
        return sorted({parse_emopain_name(p)[0] for paths in files.values() for p in paths})

    def setup(self, stage: str | None = None) -> None:
        """Read the files once (:meth:`read_recordings`), split them (:meth:`_sides`),
        cut the samples (:meth:`cut_samples`), compute and standardise the features
        (:meth:`standardised_features`) and build the datasets of every split
        (:meth:`build_datasets`); a later call does nothing."""
        if self._datasets:
            return
        root = self.resolve_root()
        recs, source = self.read_recordings(root)
        self.recording_names = [r.name for r in recs]
        self.recording_subjects = [r.subject for r in recs]
        self.recording_groups = [r.group for r in recs]
        self.subject_names = sorted(set(self.recording_subjects))
        sides = self._sides(root, recs, source)
        self.split_subjects = {
            name: sorted({r.subject for r, side in zip(recs, sides, strict=True) if name in side})
            for name in ("train", "val", "test")
        }
        samples, spans = self.cut_samples(recs)
        feats = self.standardised_features(root, recs, spans, ["train" in side for side in sides])
        frame_targets = [rec.protective for rec in recs] if self.frame_protective else None
        del recs
        self._datasets.update(self.build_datasets(feats, samples, sides, frame_targets))
        self.finish_train_split(stage)  # refuses fewer than two training classes when fitting
        log.info(
            "EmoPain data %s (%s task): %d recordings, %s samples (train/val/test)",
            root,
            self.task,
            len(feats),
            [len(self._datasets[s]) for s in ("train", "val", "test")],
        )

    def read_recordings(self, root: Path) -> tuple[list[EmoPainRecording], list[str]]:
        """Every file the DataModule uses, read, and its source (the key of
        :meth:`_folders`: ``train``, ``validation``, ``test`` or ``pooled:<name>``)."""
        recs: list[EmoPainRecording] = []
        source: list[str] = []
        for src, paths in self._files(root).items():
            for p in paths:
                recs.append(read_emopain(p))
                source.append(src)
        return recs, source

    def cut_samples(
        self, recs: list[EmoPainRecording]
    ) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], list[list[tuple[int, int]]]]:
        """Per recording: its samples, as (index rows ``(recording, start, real)``,
        labels, exercise types), and the ``(start, real)`` span of every sample, kept or
        not (``keep_classes`` leaves some out; the standardisation sees every class)."""
        samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        spans: list[list[tuple[int, int]]] = []
        threshold = self.vote_threshold if self.task == "protective" else None
        for r, rec in enumerate(recs):
            frame_labels = rec.pain if self.task == "pain" else rec.protective
            keep = rec.pain >= 0 if (self.task == "pain" or self.drop_unlabelled) else None
            rows, ys, aux, rec_spans = [], [], [], []
            for start, stop, ex in exercise_instances(rec.exercise, keep):
                for off in segment_starts(stop - start, self.sample_length, self.sample_stride):
                    s = start + int(off)
                    real = min(self.sample_length, stop - s)
                    label = majority_label(frame_labels[s : s + real], threshold=threshold)
                    rec_spans.append((s, real))  # the standardisation sees every class
                    if label not in self._label_map:  # keep_classes leaves it out
                        continue
                    ys.append(self._label_map[label])
                    rows.append((r, s, real))
                    aux.append(ex)
            samples.append(
                (
                    np.asarray(rows, np.int64).reshape(-1, 3),
                    np.asarray(ys, np.int64),
                    np.asarray(aux, np.int64),
                )
            )
            spans.append(rec_spans)
        return samples, spans

    def standardised_features(
        self,
        root: Path,
        recs: list[EmoPainRecording],
        spans: list[list[tuple[int, int]]],
        train: list[bool],
    ) -> list[np.ndarray]:
        """Per-frame features (T, F) float32 of every recording; with ``standardize``,
        standardised with the mean and std (set as :attr:`feature_mean` and
        :attr:`feature_std`) of the frames inside the sample ``spans`` of the training
        recordings (``train``). DataFormatError if there are none."""
        feats = [
            frame_features(rec, self.features, self.joint_angles, self.joint_energies, self.fps)
            for rec in recs
        ]
        if not self.standardize:
            return feats
        stats = _feature_stats(feats, spans, train)
        if stats is None:
            raise DataFormatError(
                f"{root}: the training split has no usable frames; cannot fit the standardisation"
            )
        self.feature_mean, self.feature_std = stats
        return [((f - self.feature_mean) / self.feature_std).astype(np.float32) for f in feats]

    def build_datasets(
        self,
        feats: list[np.ndarray],
        samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        sides: list[set[str]],
        frame_targets: list[np.ndarray] | None,
    ) -> dict[str, EmoPainSegmentDataset]:
        """The ``train``, ``val``, ``test`` and ``predict`` datasets: the ``samples`` of
        the recordings whose ``sides`` hold the split, over the features ``feats``."""
        subject_index = {s: i for i, s in enumerate(self.subject_names)}
        rec_ids = np.arange(len(feats), dtype=np.int64)
        subj_ids = np.asarray([subject_index[s] for s in self.recording_subjects], dtype=np.int64)

        def subset(wanted: Iterable[str]) -> EmoPainSegmentDataset:
            wanted = set(wanted)
            chosen = [p for r, p in enumerate(samples) if sides[r] & wanted]
            index = np.concatenate([c[0] for c in chosen]) if chosen else np.zeros((0, 3), np.int64)
            labels = np.concatenate([c[1] for c in chosen]) if chosen else np.zeros(0, np.int64)
            aux = np.concatenate([c[2] for c in chosen]) if chosen else np.zeros(0, np.int64)
            return EmoPainSegmentDataset(
                feats,
                index,
                labels,
                aux,
                rec_ids,
                subj_ids,
                length=self.sample_length,
                frame_targets=frame_targets,
            )

        out = {name: subset([name]) for name in ("train", "val", "test")}
        out["predict"] = subset(
            ["train", "val", "test"] if self.predict_split == "all" else [self.predict_split]
        )
        out["train"].augment_context = dict(
            layout=EMOPAIN22,
            coord_columns=3 * NUM_JOINTS if self.features != "emg" else 0,
            mean=self.feature_mean,
            std=self.feature_std,
        )
        return out

    def _sides(self, root: Path, recs: list[EmoPainRecording], source: list[str]) -> list[set[str]]:
        """Splits of each recording (a set: the validation folder can be val and test).
        Sets :attr:`subject_split` (subject -> its first split of train, val, test)."""
        if self.split_file or self.split == "subject":
            subjects = sorted({r.subject for r in recs})
            if self.split_file:
                self.subject_split = read_split_file(self.split_file, subjects)
            else:
                groups = {r.subject: r.group for r in recs}
                self.subject_split = split_subjects(
                    groups,
                    val_fraction=self.val_fraction,
                    test_fraction=self.test_fraction,
                    seed=self.split_seed,
                )
            return [{self.subject_split[r.subject]} for r in recs]
        by_folder: dict[str, set[str]] = {}
        for r, src in zip(recs, source, strict=True):
            by_folder.setdefault(r.subject, set()).add(src)
        for subject, srcs in sorted(by_folder.items()):
            if len(srcs) > 1:
                where = sorted(srcs)
                raise DataFormatError(
                    f"{root}: subject {subject!r} has files in both {where[0]}/ and {where[1]}/; "
                    "a subject must be on one side of the split (use split='subject' to pool and re-split)"
                )
        mapping = {
            "train": {"train"},
            "validation": {"val"} | ({"test"} if self.test_from == "validation" else set()),
            "test": {"test"},
        }
        sides = [set(mapping[src]) for src in source]
        self.subject_split = {}
        for r, side in zip(recs, sides, strict=True):
            self.subject_split[r.subject] = (
                "train" if "train" in side else "val" if "val" in side else "test"
            )
        return sides

    def split_counts(self) -> dict[str, dict[str, int]]:
        """Samples per class in each split (for logs and docs)."""
        if not self._datasets:
            self.setup("fit")
        out = {}
        for split in ("train", "val", "test"):
            counts = Counter(self._datasets[split].window_labels().tolist())
            out[split] = {c: counts.get(i, 0) for i, c in enumerate(self.classes)}
        return out
