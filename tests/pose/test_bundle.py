"""The offline MediaPipe bundle: built from the mediapipe 0.10.21 wheel that the
Makefile's test-data step fetched, then run on frames of a real video (Sports2D demo)."""

import os
from pathlib import Path

import numpy as np
import pytest

CACHE = Path(os.environ.get("LBP_CACHE") or Path.home() / ".cache" / "lbp_motion") / "registry"
WHEELS = sorted((CACHE / "wheels").glob("mediapipe-0.10.21-*.whl"))
VIDEO = CACHE / "sports2d-0.8.34" / "Sports2D" / "Demo" / "demo.mp4"

pytestmark = [
    pytest.mark.skipif(not WHEELS, reason=f"mediapipe 0.10.21 wheel not in {CACHE / 'wheels'} (run `make test-data`)"),
    pytest.mark.skipif(not VIDEO.is_file(), reason=f"Sports2D demo video not at {VIDEO} (run `make test-data`)"),
]


def test_offline_bundle_finds_the_walker_in_a_real_video(tmp_path):
    mp = pytest.importorskip("mediapipe", reason="the pose extra (mediapipe) is not installed")
    av = pytest.importorskip("av", reason="the pose extra (PyAV) is not installed")
    from mediapipe.tasks.python import BaseOptions, vision

    from lbp_motion.pose.bundle import bundle_from_wheel

    task = bundle_from_wheel(WHEELS[0], tmp_path / "pose_landmarker.task")
    import zipfile

    with zipfile.ZipFile(task) as zf:
        assert sorted(zf.namelist()) == ["pose_detector.tflite", "pose_landmarks_detector.tflite"]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())

    with av.open(str(VIDEO)) as container:
        frames = [f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(video=0)) if i in (60, 100, 150)]
    options = vision.PoseLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(task)), running_mode=vision.RunningMode.IMAGE, num_poses=1
    )
    found = 0
    with vision.PoseLandmarker.create_from_options(options) as landmarker:
        for rgb in frames:
            result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
            if not result.pose_landmarks:
                continue
            found += 1
            pose = result.pose_landmarks[0]
            nose, hip, ankle = pose[0].y, (pose[23].y + pose[24].y) / 2, (pose[27].y + pose[28].y) / 2
            assert nose < hip < ankle  # image y points down: head above hips above ankles
            assert pose[0].visibility > 0.5
    assert found >= 2
