"""End to end on a real video, offline: the Sports2D demo (a woman walking across in
side view, a man on a box who later jumps down; 1768x994, 30 fps, 230 frames),
fetched from the package registry by `make test-data`, and the MediaPipe backend with
the bundle built from the mediapipe 0.10.21 wheel. Every 2nd frame keeps it fast."""

import json
import shutil

import numpy as np
import pytest

from lbp_motion.cli import main
from lbp_motion.datasets.format import read_labels, read_recording
from lbp_motion.datasets.layouts import COCO17
from tests.pose.conftest import HAVE_MODELS, REGISTRY, VIDEO

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not VIDEO.is_file(),
        reason=f"the Sports2D demo video is not at {VIDEO}: run `make test-data` "
        "(it fetches sports2d==0.8.34 from the package registry)",
    ),
    pytest.mark.skipif(
        not HAVE_MODELS,
        reason=f"the mediapipe 0.10.21 pose models are not in {REGISTRY}: run `make test-data`",
    ),
]
mp = pytest.importorskip("mediapipe", reason="the pose extra (mediapipe) is not installed")

J = COCO17.index
HIPS, ANKLES = [J("left_hip"), J("right_hip")], [J("left_ankle"), J("right_ankle")]
LATERAL = [
    (J(f"left_{n}"), J(f"right_{n}"))
    for n in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
]


@pytest.fixture
def cache(monkeypatch):
    monkeypatch.setenv(
        "LBP_CACHE", str(REGISTRY.parent)
    )  # the offline bundle is built / cached there


def left_right_swaps(k: np.ndarray, height: float) -> int:
    """Frame pairs where exchanging left and right joints makes the skeleton move
    much less than keeping them: a left/right swap of the detector."""
    swaps = 0
    for a, b in zip(k[:-1], k[1:]):
        pairs = [
            (lj, rj) for lj, rj in LATERAL if min(a[lj, 2], a[rj, 2], b[lj, 2], b[rj, 2]) > 0.3
        ]
        if len(pairs) < 3:
            continue
        keep = np.mean([np.linalg.norm(b[i, :2] - a[i, :2]) for p in pairs for i in p])
        swap = (
            np.mean(
                [
                    np.linalg.norm(b[rj, :2] - a[lj, :2]) + np.linalg.norm(b[lj, :2] - a[rj, :2])
                    for lj, rj in pairs
                ]
            )
            / 2
        )
        swaps += swap < 0.5 * keep and keep > 0.05 * height
    return swaps


def test_extract_poses_on_the_real_video_beside_a_corrupt_one(tmp_path, cache, capsys):
    videos, out = tmp_path / "videos", tmp_path / "keypoints"
    videos.mkdir()
    shutil.copy(VIDEO, videos / "walker.mp4")
    (videos / "broken.mp4").write_bytes(VIDEO.read_bytes()[:20000])  # cut off: no index, no frames
    (videos / "labels.csv").write_text("recording,subject,label\nwalker,s1,low\nbroken,s2,high\n")
    args = ["extract-poses", str(videos), "--out_dir", str(out), "--stride", "2", "--no_progress"]

    assert main(args) == 1  # one video failed
    printed = capsys.readouterr()
    assert "2 videos: 1 written, 0 already done, 1 failed; 115 frames" in printed.out
    assert "failed: broken.mp4" in printed.out
    assert sorted(p.name for p in out.iterdir()) == [
        "labels.csv",
        "walker.npz",
    ]  # nothing half-written
    assert [r.recording for r in read_labels(out)] == ["walker"]

    rec = read_recording(out / "walker.npz")
    assert (
        rec.layout == "coco17" and rec.image_size == (1768, 994) and rec.fps == pytest.approx(15.0)
    )
    assert rec.num_frames == 115  # every 2nd of 230 frames; misses are zero rows, timing kept
    meta = rec.meta
    assert (meta["backend"], meta["model"], meta["frame_stride"]) == (
        "mediapipe",
        "pose_landmarker_offline.task",
        2,
    )
    assert meta["backend_version"] == mp.__version__ and meta["source_video"] == "walker.mp4"

    # the walker is found and tracked, not the man on the box
    k = rec.keypoints
    seen = np.flatnonzero(k[..., 2].max(axis=1) > 0)
    first, last = seen[0], seen[-1]
    assert (last - first) / rec.fps > 3.0  # followed for over 3 s ...
    assert len(seen) / (last - first + 1) > 0.9  # ... and found in > 90 % of the frames in between
    assert len(seen) / len(k) > 0.4  # she is in view for about half of the video
    hips_seen = k[:, HIPS, 2].min(axis=1) > 0.3
    hip_x = k[hips_seen][:, HIPS, 0].mean(axis=1)
    assert abs(hip_x[-1] - hip_x[0]) > 0.5 * 1768  # she crosses the scene
    assert (
        np.median(k[hips_seen][:, HIPS, 1].mean(axis=1)) > 0.6 * 994
    )  # on the ground, not on the box
    # plausible geometry: ankles below hips, and left and right do not swap
    both = k[:, HIPS + ANKLES, 2].min(axis=1) > 0.3
    assert (k[both][:, ANKLES, 1].mean(axis=1) > k[both][:, HIPS, 1].mean(axis=1)).mean() > 0.9
    height = np.median(k[both][:, ANKLES, 1].mean(axis=1) - k[both][:, [J("nose")], 1].mean(axis=1))
    assert left_right_swaps(k[first : last + 1], height) <= 0.05 * (last - first)
    swapped = k[first : last + 1].copy()  # the check itself sees swaps: exchange sides in 3 frames
    for t in (10, 12, 14):
        for lj, rj in LATERAL:
            swapped[t, [lj, rj]] = swapped[t, [rj, lj]]
    assert left_right_swaps(swapped, height) >= 4

    stamp = (out / "walker.npz").stat().st_mtime_ns
    assert main(args) == 1  # the broken file still fails ...
    assert "0 written, 1 already done, 1 failed" in capsys.readouterr().out
    assert (out / "walker.npz").stat().st_mtime_ns == stamp  # ... and the walker is not redone


def test_lbp_predict_file_answers_for_the_real_video(tiny_checkpoint, tmp_path, cache, capsys):
    out = tmp_path / "pred"
    args = ["predict-file", str(VIDEO), "--ckpt_path", str(tiny_checkpoint), "--out_dir", str(out), "--stride", "3",
            "--overlay", "--no_progress"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("demo: ") and "no TUG time (the person is not seen seated" in printed
    result = json.loads((out / "prediction.json").read_text())
    assert (
        result["predicted"] in result["classes"]
        and abs(sum(result["probabilities"].values()) - 1) < 1e-4
    )
    assert (
        result["resampled_from_fps"] == 10.0 and len(result["windows"]) >= 10
    )  # 7.7 s in 1 s windows, 0.5 s apart
    assert result["pose"]["backend"] == "mediapipe" and result["tug"]["time_s"] is None
    assert (out / "timeline.png").is_file()
    import av

    with av.open(str(out / "overlay.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (960, 540)
        assert sum(1 for _ in container.decode(stream)) == 77  # every 3rd of 230 frames


def test_ctrl_c_during_extract_poses_exits_130_and_the_rerun_finishes(tmp_path):
    """SIGINT while the second video is extracted: status 130, one line saying how to
    resume, the first video's file whole, nothing half-written; the same command then
    finishes the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    videos, out = tmp_path / "videos", tmp_path / "keypoints"
    videos.mkdir()
    for name in ("a", "b"):
        shutil.copy(VIDEO, videos / f"{name}.mp4")
    args = [
        sys.executable,
        "-m",
        "lbp_motion.cli",
        "extract-poses",
        str(videos),
        "--out_dir",
        str(out),
        "--no_progress",
    ]
    env = dict(os.environ, LBP_CACHE=str(REGISTRY.parent), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while not (out / "a.npz").is_file():
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "the first video was not extracted in time"
        time.sleep(0.2)
    time.sleep(1.0)  # into the second video
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert (
        last
        == "lbp: interrupted by SIGINT; run the same command again: finished videos are kept and skipped"
    )
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("labels")) == ["a.npz"]
    assert read_recording(out / "a.npz").num_frames > 0

    rerun = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "1 written, 1 already done, 0 failed" in rerun.stdout
