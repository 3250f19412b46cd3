"""lbp_motion.datasets.splits.subject_folds / loso_folds: the one place subject folds are made."""

import pytest

from lbp_motion.datasets.splits import loso_folds, subject_folds
from lbp_motion.errors import ConfigError
from lbp_motion.pipelines import cv

SUBJECTS = [f"p{i:02d}" for i in range(10)]


def test_loso_holds_out_every_subject_once():
    folds = subject_folds(list(reversed(SUBJECTS)), "loso")
    assert folds == [[s] for s in SUBJECTS]  # sorted, one subject each


@pytest.mark.parametrize(("k", "seed"), [(2, 0), (3, 1), (5, 0), (10, 4)])
def test_k_folds_partition_the_subjects_into_near_equal_parts(k, seed):
    folds = subject_folds(SUBJECTS, k, seed=seed)
    flat = [s for fold in folds for s in fold]
    assert len(folds) == k and sorted(flat) == SUBJECTS and len(set(flat)) == len(flat)
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    assert all(fold == sorted(fold) for fold in folds)


def test_a_fixed_seed_gives_the_published_folds():
    # pinned: the fold assignment must never change (earlier lbp cv runs and published
    # numbers depend on it); these are the folds lbp cv has always drawn
    assert subject_folds(SUBJECTS, 3, seed=0) == [
        ["p02", "p04", "p06", "p07"], ["p03", "p05", "p09"], ["p00", "p01", "p08"],
    ]  # fmt: skip
    assert subject_folds(SUBJECTS, 4, seed=7) == [
        ["p00", "p07", "p08"], ["p01", "p03", "p06"], ["p02", "p04"], ["p05", "p09"],
    ]  # fmt: skip
    assert subject_folds(SUBJECTS, "4", seed=7) == subject_folds(SUBJECTS, 4, seed=7)


def test_lbp_cv_makes_its_folds_with_this_helper():
    """One subject-fold helper: lbp cv uses it rather than a copy."""
    assert cv.subject_folds is subject_folds


def test_a_number_of_folds_outside_2_to_the_subjects_is_refused():
    for k in (1, 11):
        with pytest.raises(
            ConfigError, match=f"--folds {k}: expected 'loso' or a number from 2 to the 10"
        ):
            subject_folds(SUBJECTS, k)


def test_loso_folds_pairs_training_and_test_subjects():
    subjects = ["P003", "C001", "P001", "P003", "C002"]  # repeated ids count once
    unique = sorted(set(subjects))
    assert loso_folds(subjects) == [([s for s in unique if s != held], held) for held in unique]
    assert [held for _, held in loso_folds(subjects)] == [
        f[0] for f in subject_folds(unique, "loso")
    ]
    assert loso_folds([]) == []
