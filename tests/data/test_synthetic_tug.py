"""The synthetic TUG generator: format, determinism, labels, sites, severity in the motion."""

import numpy as np
import pytest

from lbp_motion.data.format import read_labels, read_recording
from lbp_motion.data.layouts import COCO17
from lbp_motion.data.synthetic import ensure_synthetic_tug, generate_tug_dataset

CLASSES = ("low", "medium", "high")


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    return generate_tug_dataset(tmp_path_factory.mktemp("six"), num_subjects=6, recordings_per_subject=2, seed=0)


def test_files_follow_the_format(six):
    rows = read_labels(six)
    assert len(rows) == 12
    lengths = []
    for row in rows:
        rec = read_recording(six / f"{row.recording}.npz")
        assert rec.keypoints.shape[1:] == (17, 3) and rec.layout == "coco17" and rec.fps == 30.0
        conf = rec.keypoints[..., 2]
        assert conf.min() >= 0 and conf.max() <= 1 and (conf == 0).any()  # missed joints
        w, h = rec.image_size
        vis = conf > 0
        assert (rec.keypoints[..., 0][vis] <= w).all() and (rec.keypoints[..., 1][vis] <= h).all()
        lengths.append(rec.num_frames / rec.fps)
    assert 10.0 <= min(lengths) and max(lengths) <= 20.0  # seconds


def test_seeded_and_deterministic(six, tmp_path):
    again = generate_tug_dataset(tmp_path / "again", num_subjects=6, recordings_per_subject=2, seed=0)
    other = generate_tug_dataset(tmp_path / "other", num_subjects=6, recordings_per_subject=2, seed=1)
    name = read_labels(six)[0].recording
    a = read_recording(six / f"{name}.npz").keypoints
    np.testing.assert_array_equal(a, read_recording(again / f"{name}.npz").keypoints)
    b = read_recording(other / f"{name}.npz").keypoints
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_labels_balanced_per_subject_and_sites(tmp_path):
    root = generate_tug_dataset(tmp_path / "s", num_subjects=9, recordings_per_subject=2, sites=3, seed=0)
    rows = read_labels(root)
    per_subject = {}
    for r in rows:
        per_subject.setdefault(r.subject, set()).add(r.label)
    assert all(len(v) == 1 for v in per_subject.values())
    labels = [next(iter(v)) for v in per_subject.values()]
    assert sorted(labels.count(c) for c in CLASSES) == [3, 3, 3]
    assert len({r.site for r in rows}) == 3 and all(r.site for r in rows)


def test_severity_shows_in_duration_and_walking_speed(tmp_path):
    root = generate_tug_dataset(tmp_path / "sev", num_subjects=12, recordings_per_subject=1, seed=4)
    lh, rh = COCO17.index("left_hip"), COCO17.index("right_hip")
    duration, speed = {c: [] for c in CLASSES}, {c: [] for c in CLASSES}
    for row in read_labels(root):
        rec = read_recording(root / f"{row.recording}.npz")
        kp = rec.keypoints
        ok = (kp[:, lh, 2] > 0) & (kp[:, rh, 2] > 0)
        hip_x = (kp[ok, lh, 0] + kp[ok, rh, 0]) / 2
        step = np.abs(np.diff(hip_x)) * rec.fps
        duration[row.label].append(rec.num_frames / rec.fps)
        speed[row.label].append(np.percentile(step, 90))  # while walking
    mean = {c: (np.mean(duration[c]), np.mean(speed[c])) for c in CLASSES}
    assert mean["low"][0] < mean["medium"][0] < mean["high"][0]
    assert mean["low"][1] > mean["medium"][1] > mean["high"][1]


def test_left_and_right_are_distinct(six):
    rec = read_recording(next(six.glob("*.npz")))
    kp = rec.keypoints
    lh, rh = COCO17.index("left_hip"), COCO17.index("right_hip")
    ok = (kp[:, lh, 2] > 0) & (kp[:, rh, 2] > 0)
    assert np.mean(np.abs(kp[ok, lh, 0] - kp[ok, rh, 0]) > 1.0) > 0.8


def test_cache_reuses_the_folder_and_keys_on_settings(tmp_path):
    a = ensure_synthetic_tug(tmp_path, num_subjects=3, recordings_per_subject=1)
    stamp = (a / "labels.csv").stat().st_mtime_ns
    assert ensure_synthetic_tug(tmp_path, num_subjects=3, recordings_per_subject=1) == a
    assert (a / "labels.csv").stat().st_mtime_ns == stamp
    b = ensure_synthetic_tug(tmp_path, num_subjects=3, recordings_per_subject=1, seed=5)
    assert b != a and (b / "labels.csv").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left
