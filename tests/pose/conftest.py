"""Shared pieces of the pose tests: where the registry files are, a fake pose backend
(so that the runner, tracking and the CLI are tested without mediapipe) and tiny
generated videos. The tiny trained checkpoint and LBP_OFFLINE=1 come from
tests/conftest.py."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from lbp_motion.datasets.layouts import COCO17
from lbp_motion.pose.base import PersonPose, PoseEstimator

#: $LBP_CACHE/registry, as scripts/fetch_test_data.py fills it (`make test-data`)
REGISTRY = Path(os.environ.get("LBP_CACHE") or Path.home() / ".cache" / "lbp_motion") / "registry"
VIDEO = REGISTRY / "sports2d-0.8.34" / "Sports2D" / "Demo" / "demo.mp4"
MEDIAPIPE_MODELS = REGISTRY / "mediapipe-0.10.21" / "mediapipe" / "modules"
WHEELS = sorted((REGISTRY / "wheels").glob("mediapipe-0.10.21-*.whl"))
HAVE_MODELS = (
    bool(WHEELS) or (MEDIAPIPE_MODELS / "pose_landmark" / "pose_landmark_full.tflite").is_file()
)


def person(cx: float, cy: float, height: float = 200.0, conf: float = 0.9) -> np.ndarray:
    """A standing COCO-17 stick figure (J, 3) with its mid-hip at (cx, cy)."""
    top = cy - 0.5 * height
    y = {
        "nose": top + 0.06 * height, "left_eye": top + 0.05 * height, "right_eye": top + 0.05 * height,
        "left_ear": top + 0.06 * height, "right_ear": top + 0.06 * height,
        "left_shoulder": top + 0.2 * height, "right_shoulder": top + 0.2 * height,
        "left_elbow": top + 0.35 * height, "right_elbow": top + 0.35 * height,
        "left_wrist": top + 0.48 * height, "right_wrist": top + 0.48 * height,
        "left_hip": cy, "right_hip": cy, "left_knee": cy + 0.25 * height, "right_knee": cy + 0.25 * height,
        "left_ankle": cy + 0.48 * height, "right_ankle": cy + 0.48 * height,
    }  # fmt: skip
    kp = np.zeros((17, 3), np.float32)
    for j, name in enumerate(COCO17.joints):
        side = (
            0.08
            * height
            * (1 if name.startswith("left") else -1 if name.startswith("right") else 0)
        )
        kp[j] = (cx + side, y[name], conf)
    return kp


class FakeBackend(PoseEstimator):
    """A backend without a model: a walker crossing the frame left to right (x from
    20 % to 80 % of the width over 40 frames) and a bystander standing still at 10 %,
    both in coco17; frames whose time is in ``miss_ms`` have nobody."""

    name = "fake"
    layout = "coco17"
    batch_size = 4

    def __init__(self, miss_ms: Sequence[int] = (), **_: object) -> None:
        self.miss_ms = set(miss_ms)
        self.calls: list[int] = []
        self.closed = False

    def info(self) -> dict[str, str]:
        return {"backend": self.name, "model": "stick-figures", "backend_version": "1"}

    def start_video(self, fps: float, image_size: tuple[int, int]) -> None:
        self.size = image_size
        self.fps = fps

    def estimate(self, frames, timestamps_ms):
        self.calls.append(len(frames))
        out = []
        for frame, ts in zip(frames, timestamps_ms):
            h, w = frame.shape[:2]
            if ts in self.miss_ms:
                out.append([])
                continue
            t = ts / 1000.0 * 30 / 40  # fraction of a 40-frame crossing at 30 fps
            walker = person(w * (0.2 + 0.6 * min(t, 1.0)), h * 0.55, height=h * 0.6)
            bystander = person(w * 0.1, h * 0.5, height=h * 0.5)
            out.append([PersonPose(bystander, "coco17", 0.9), PersonPose(walker, "coco17", 0.9)])
        return out

    def close(self) -> None:
        self.closed = True


def write_video(
    path: Path,
    frames: int = 40,
    size: tuple[int, int] = (96, 64),
    fps: int = 30,
    rotation: int | None = None,
) -> Path:
    """A small H.264 (or MPEG-4) video of a moving gradient; ``rotation``: display
    rotation metadata (degrees counter-clockwise, as FFmpeg stores it)."""
    import av

    w, h = size
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            img = np.zeros((h, w, 3), np.uint8)
            img[: h // 3, : w // 3] = (255, 0, 0)  # red block top-left: shows orientation
            img[..., 1] = (i * 5) % 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def fake_backend(monkeypatch):
    """Register the fake backend as "fake" and return the instances created."""
    from lbp_motion.pose import base

    created: list[FakeBackend] = []

    def factory(**options):
        est = FakeBackend(**options)
        created.append(est)
        return est

    monkeypatch.setitem(base._REGISTERED, "fake", factory)
    return created
