"""Subject-wise splits: no subject ever has windows on two sides of a split.

One train/val/test split (:func:`split_subjects`, split files) and the folds of a
cross-validation by subject (:func:`subject_folds`: K folds or leave-one-subject-out;
:func:`loso_folds`: the same LOSO folds as training/test pairs).
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from lbp_motion.datasets.format import DataFormatError
from lbp_motion.errors import ConfigError

SPLITS = ("train", "val", "test")


def split_subjects(
    subject_labels: Mapping[str, str],
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, str]:
    """Assign each subject to ``train``, ``val`` or ``test``, stratified by label.

    ``subject_labels`` maps a subject to its label (for subjects with several
    recordings, the caller passes the most frequent one). Within each label the
    subjects are shuffled with ``seed`` and cut by the fractions; a split with a
    positive fraction gets at least one subject of a label that has three or more.
    """
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be >= 0 and sum below 1"
        )
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[str]] = defaultdict(list)
    for subject, label in sorted(subject_labels.items()):
        by_label[label].append(subject)
    out: dict[str, str] = {}
    for label in sorted(by_label):
        subjects = by_label[label]
        order = rng.permutation(len(subjects))
        n = len(subjects)
        n_test = int(round(n * test_fraction))
        n_val = int(round(n * val_fraction))
        if n >= 3:
            n_test = max(n_test, 1 if test_fraction > 0 else 0)
            n_val = max(n_val, 1 if val_fraction > 0 else 0)
        n_test = min(n_test, max(n - 1, 0))
        n_val = min(n_val, max(n - 1 - n_test, 0))
        for rank, i in enumerate(order):
            split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            out[subjects[i]] = split
    return out


def subject_folds(subjects: Sequence[str], folds: str | int, seed: int = 0) -> list[list[str]]:
    """Test subjects of each fold: one subject per fold for ``"loso"``, else ``folds``
    groups of nearly equal size after a seeded shuffle. Folds are disjoint and cover
    every subject.

    The assignment is fixed: the same subjects and ``seed`` give the same folds in every
    version (``lbp cv`` runs and published numbers depend on it)."""
    subjects = sorted(subjects)
    if folds == "loso":
        return [[s] for s in subjects]
    k = int(folds)
    if not 2 <= k <= len(subjects):
        raise ConfigError(
            f"--folds {k}: expected 'loso' or a number from 2 to the {len(subjects)} subjects"
        )
    order = np.random.default_rng(seed).permutation(len(subjects))
    return [sorted(subjects[i] for i in part) for part in np.array_split(order, k)]


def loso_folds(subjects: Iterable[str]) -> list[tuple[list[str], str]]:
    """Leave-one-subject-out folds: ``[(train_subjects, test_subject), ...]``, one per
    distinct subject in sorted order (the folds of ``subject_folds(subjects, "loso")``);
    each fold trains on all other subjects."""
    unique = sorted(set(subjects))
    return [([s for s in unique if s != held], held) for (held,) in subject_folds(unique, "loso")]


def majority(values: Sequence[str]) -> str:
    """Most frequent value; ties go to the one seen first."""
    return Counter(values).most_common(1)[0][0]


def read_split_file(path: str | Path, subjects: Sequence[str]) -> dict[str, str]:
    """Read a split file: CSV with columns ``subject,split`` (split in train/val/test).

    Every subject of the data must be listed; subjects the data lack are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: split file not found")
    out: dict[str, str] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"subject", "split"} <= set(reader.fieldnames):
            raise DataFormatError(
                f"{path}: expected columns 'subject' and 'split'; it has {reader.fieldnames}"
            )
        for line, row in enumerate(reader, start=2):
            split = (row["split"] or "").strip()
            if split not in SPLITS:
                raise DataFormatError(
                    f"{path}, line {line}: field 'split' is {split!r}; expected one of {SPLITS}"
                )
            out[(row["subject"] or "").strip()] = split
    missing = sorted(set(subjects) - set(out))
    if missing:
        raise DataFormatError(f"{path}: subjects {missing[:5]} of the data have no split")
    return {s: out[s] for s in subjects}


def write_split_file(path: str | Path, assignment: Mapping[str, str]) -> Path:
    """Write ``assignment`` as a split file (the format of :func:`read_split_file`)."""
    path = Path(path)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["subject", "split"])
        for subject in sorted(assignment):
            writer.writerow([subject, assignment[subject]])
    return path
