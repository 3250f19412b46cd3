"""`lbp extract-poses` on a real video beside a corrupt one: one keypoint file written,
the other reported, exit status 1, and a rerun redoes nothing. Offline: the MediaPipe
model is the bundle built from the mediapipe 0.10.21 wheel fetched by `make test-data`."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from lbp_motion.cli import main
from lbp_motion.data.format import read_labels, read_recording
from lbp_motion.data.layouts import COCO17
from lbp_motion.pose.tracking import link_tracks, main_subject

CACHE = Path(os.environ.get("LBP_CACHE") or Path.home() / ".cache" / "lbp_motion") / "registry"
WHEELS = sorted((CACHE / "wheels").glob("mediapipe-0.10.21-*.whl"))
VIDEO = CACHE / "sports2d-0.8.34" / "Sports2D" / "Demo" / "demo.mp4"


def _person(x, y, conf=1.0):
    p = np.zeros((17, 3), np.float32)
    p[:, 0], p[:, 1], p[:, 2] = x, y, conf
    return p


def test_the_main_subject_is_the_track_that_travels_farthest():
    # a bystander standing at x=100 and a walker going from x=300 to x=700
    detections = [[_person(100, 400), _person(300 + 40 * t, 400)] for t in range(11)]
    detections[5] = [_person(100, 400)]  # the walker is missed once
    tracks = link_tracks(detections, (1000, 800))
    assert sorted(len(t.frames) for t in tracks) == [10, 11]
    keypoints = main_subject(detections, (1000, 800), 17)
    assert keypoints[0, 0, 0] == 300 and keypoints[10, 0, 0] == 700
    assert (keypoints[5] == 0).all()  # the missed frame keeps its place as a zero row


@pytest.mark.skipif(not WHEELS or not VIDEO.is_file(),
                    reason=f"the mediapipe 0.10.21 wheel or the Sports2D video is not in {CACHE} (run `make test-data`)")
def test_extract_poses_real_video_corrupt_file_and_resume(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mediapipe", reason="the pose extra (mediapipe) is not installed")
    monkeypatch.setenv("LBP_OFFLINE", "1")  # no model download in tests: the offline bundle
    monkeypatch.setenv("LBP_CACHE", str(CACHE.parent))
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(VIDEO, videos / "walker.mp4")
    (videos / "broken.mp4").write_bytes(VIDEO.read_bytes()[:20000])
    (videos / "labels.csv").write_text("recording,subject,label\nwalker,s1,low\nbroken,s2,high\n")
    out = tmp_path / "keypoints"
    args = ["extract-poses", str(videos), "--out", str(out), "--stride", "6", "--no-progress",
            "--labels", str(videos / "labels.csv")]
    assert main(args) == 1  # one video failed
    printed = capsys.readouterr()
    assert "failed: broken.mp4" in printed.out and "1 written" in printed.out

    rec = read_recording(out / "walker.npz")
    assert rec.layout == "coco17" and rec.image_size == (1768, 994) and rec.fps == pytest.approx(5.0)
    assert rec.num_frames == 39  # 230 frames, every 6th: timing kept, misses as zero rows
    assert rec.meta["backend"] == "mediapipe" and rec.meta["model"] == "pose_landmarker_offline.task"
    k = rec.keypoints
    hips = [COCO17.index("left_hip"), COCO17.index("right_hip")]
    ankles = [COCO17.index("left_ankle"), COCO17.index("right_ankle")]
    found = k[:, hips + ankles, 2].min(axis=1) > 0.3
    assert found.mean() > 0.5  # hips and ankles of the main subject in most frames
    assert (k[found][:, ankles, 1].mean(1) > k[found][:, hips, 1].mean(1)).mean() > 0.9  # ankles below hips
    assert [r.recording for r in read_labels(out)] == ["walker"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no half-written files

    stamp = (out / "walker.npz").stat().st_mtime_ns
    assert main(args) == 1  # the broken file still fails ...
    assert "1 already done" in capsys.readouterr().out
    assert (out / "walker.npz").stat().st_mtime_ns == stamp  # ... and the done one is not redone
