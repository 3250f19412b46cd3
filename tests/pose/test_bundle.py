"""The offline MediaPipe bundle: built from the mediapipe 0.10.21 wheel that the
Makefile's test-data step fetched, then run on frames of a real video (Sports2D demo)."""

import numpy as np
import pytest

from tests.pose.conftest import HAVE_MODELS, REGISTRY

CACHE = REGISTRY
WHEELS = sorted((CACHE / "wheels").glob("mediapipe-0.10.21-*.whl"))
VIDEO = CACHE / "sports2d-0.8.34" / "Sports2D" / "Demo" / "demo.mp4"


@pytest.mark.skipif(
    not WHEELS, reason=f"mediapipe 0.10.21 wheel not in {CACHE / 'wheels'} (run `make test-data`)"
)
@pytest.mark.skipif(
    not VIDEO.is_file(), reason=f"Sports2D demo video not at {VIDEO} (run `make test-data`)"
)
def test_offline_bundle_finds_the_walker_in_a_real_video(tmp_path):
    mp = pytest.importorskip("mediapipe", reason="the pose extra (mediapipe) is not installed")
    av = pytest.importorskip("av", reason="the pose extra (PyAV) is not installed")
    from mediapipe.tasks.python import BaseOptions, vision

    from lbp_motion.pose.bundle import bundle_from_wheel
    from lbp_motion.pose.mediapipe_backend import _ignore_sigprof

    _ignore_sigprof()  # as the backend does: mediapipe's threads arm SIGPROF timers (see there)

    task = bundle_from_wheel(WHEELS[0], tmp_path / "pose_landmarker.task")
    import zipfile

    with zipfile.ZipFile(task) as zf:
        assert sorted(zf.namelist()) == ["pose_detector.tflite", "pose_landmarks_detector.tflite"]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())

    with av.open(str(VIDEO)) as container:
        frames = [
            f.to_ndarray(format="rgb24")
            for i, f in enumerate(container.decode(video=0))
            if i in (60, 100, 150)
        ]
    options = vision.PoseLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(task)),
        running_mode=vision.RunningMode.IMAGE,
        num_poses=1,
    )
    found = 0
    with vision.PoseLandmarker.create_from_options(options) as landmarker:
        for rgb in frames:
            result = landmarker.detect(
                mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
            )
            if not result.pose_landmarks:
                continue
            found += 1
            pose = result.pose_landmarks[0]
            nose, hip, ankle = (
                pose[0].y,
                (pose[23].y + pose[24].y) / 2,
                (pose[27].y + pose[28].y) / 2,
            )
            assert nose < hip < ankle  # image y points down: head above hips above ankles
            assert pose[0].visibility > 0.5
    assert found >= 2


# -- where the MediaPipe model comes from ------------------------------------------------
def _fake_bundle(path):
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pose_detector.tflite", b"d")
        zf.writestr("pose_landmarks_detector.tflite", b"l")
    return path


def test_model_order_config_then_cache(tmp_path):
    from lbp_motion.pose.mediapipe_backend import BackendUnavailable, resolve_model

    given = _fake_bundle(tmp_path / "mine.task")
    assert resolve_model(given, cache=tmp_path / "c").source == "config"
    with pytest.raises(BackendUnavailable, match="nope.task: pose model file not found"):
        resolve_model(tmp_path / "nope.task")
    cached = _fake_bundle(tmp_path / "c" / "models" / "pose_landmarker_full.task")
    found = resolve_model(cache=tmp_path / "c")
    assert (found.path, found.source) == (cached, "cache")


def test_official_download_once_else_offline_bundle(tmp_path, monkeypatch):
    """No network in tests: the download function is replaced; it is asked for the
    official URL, and where it fails the bundle is built from the registry's wheel."""
    from lbp_motion.pose import mediapipe_backend as mb

    calls = []

    def fake_download(dest, url=mb.OFFICIAL_MODEL_URL, timeout=mb.DOWNLOAD_TIMEOUT_S):
        calls.append(url)
        return _fake_bundle(dest)

    monkeypatch.setattr(mb, "download_official_model", fake_download)
    monkeypatch.delenv("LBP_OFFLINE")
    got = mb.resolve_model(cache=tmp_path / "a")
    assert (
        got.source == "download"
        and got.path == tmp_path / "a" / "models" / "pose_landmarker_full.task"
    )
    assert calls == [
        "https://storage.googleapis.com/mediapipe-models/pose_landmarker/pose_landmarker_full/float16/latest/pose_landmarker_full.task"
    ]
    assert mb.resolve_model(cache=tmp_path / "a").source == "cache" and len(calls) == 1  # once

    def unreachable(dest, url=mb.OFFICIAL_MODEL_URL, timeout=mb.DOWNLOAD_TIMEOUT_S):
        calls.append(url)
        raise OSError("host unreachable")

    monkeypatch.setattr(mb, "download_official_model", unreachable)
    if not HAVE_MODELS:
        with pytest.raises(mb.BackendUnavailable, match="host unreachable"):
            mb.resolve_model(cache=tmp_path / "b", download=True)
        pytest.skip(f"mediapipe 0.10.21 models not in {REGISTRY} (run `make test-data`)")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "registry").symlink_to(REGISTRY)
    got = mb.resolve_model(cache=tmp_path / "b")
    assert (
        got.source == "offline-bundle"
        and got.path.name == "pose_landmarker_offline.task"
        and len(calls) == 2
    )
    monkeypatch.setenv("LBP_OFFLINE", "1")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "registry").symlink_to(REGISTRY)
    assert (
        mb.resolve_model(cache=tmp_path / "c").source == "offline-bundle" and len(calls) == 2
    )  # not asked
