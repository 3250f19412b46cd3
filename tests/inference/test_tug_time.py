"""The TUG time from the hip trajectory, against the synthetic generator's own timing."""

import numpy as np
import pytest

from lbp_motion.datasets.format import read_recording
from lbp_motion.datasets.synthetic import generate_tug_dataset, tug_body
from lbp_motion.datasets.synthetic import tug as synthetic
from lbp_motion.inference.predict import estimate_tug_time, hip_height

SEED, SUBJECTS = 3, 6


def _true_tug_times():
    """Sit-to-stand start to stand-to-sit end of each synthetic recording, from the
    generator's segment durations (idle, sit-to-stand, walk, turn, walk, turn, sit, idle)."""
    classes = ("low", "medium", "high")
    cls, _ = synthetic._assign(SUBJECTS, classes, None, SEED)
    out = []
    for i in range(SUBJECTS):
        style = tug_body._subject_style(np.random.default_rng([SEED, 1, i]), 2.0 * cls[i] / 2)
        motion = tug_body._recording_motion(style, np.random.default_rng([SEED, 2, i, 0]))
        starts = np.concatenate([[0.0], np.cumsum(tug_body._segment_durations(motion))])
        out.append((starts[1], starts[7]))
    return out


def test_tug_time_matches_the_synthetic_timing(tmp_path):
    root = generate_tug_dataset(
        tmp_path, num_subjects=SUBJECTS, recordings_per_subject=1, seed=SEED
    )
    for i, (start, end) in enumerate(_true_tug_times()):
        rec = read_recording(root / f"s{i + 1:03d}_r1.npz")
        est = estimate_tug_time(rec.keypoints, "coco17", rec.fps)
        assert est["time_s"] == pytest.approx(end - start, abs=0.75), est
        assert est["rise_s"] == pytest.approx(start, abs=0.75) and est["sit_s"] == pytest.approx(
            end, abs=0.75
        )
        assert est["standing"] - est["seated_start"] > 0.5  # torso lengths


def test_no_estimate_without_sitting_or_without_a_track():
    # a person standing and walking the whole time: hips stay high
    t = np.arange(120)
    kp = np.zeros((120, 17, 3), np.float32)
    kp[:, :, 2] = 1.0
    kp[:, 5:7, 1], kp[:, 11:13, 1], kp[:, 15:17, 1] = 100, 200, 370  # shoulders, hips, ankles
    kp[:, :, 0] = (10 * t)[:, None]
    est = estimate_tug_time(kp, "coco17", 30.0)
    assert est["time_s"] is None and "not seen seated at the start" in est["reason"]
    assert np.nanmedian(hip_height(kp, "coco17")) == pytest.approx(1.7)
    empty = estimate_tug_time(np.zeros((60, 17, 3), np.float32), "coco17", 30.0)
    assert empty["time_s"] is None and "seen in 0%" in empty["reason"]
