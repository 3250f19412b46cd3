"""The MediaPipe backend: BlazePose (33 landmarks) with the Tasks API PoseLandmarker,
on the CPU, mapped to COCO-17.

Where its model comes from, in this order:

1. ``model_path`` (the config's ``--model``);
2. a cached copy: ``$LBP_CACHE/models/pose_landmarker_full.task`` (default cache
   ``~/.cache/lbp_motion``);
3. the official model, downloaded once into that cache from Google's model host
   (``OFFICIAL_MODEL_URL``); skipped when ``LBP_OFFLINE=1`` is set;
4. where the host cannot be reached: the bundle built from the BlazePose models inside
   the mediapipe 0.10.21 wheel (:mod:`.bundle`), taken from
   ``$LBP_CACHE/registry/wheels`` or downloaded there with ``pip download`` from the
   package registry, and cached as ``pose_landmarker_offline.task``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from ..data.layouts import to_layout
from ..errors import LbpError
from .bundle import bundle_from_wheel

log = logging.getLogger(__name__)

OFFICIAL_MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/pose_landmarker/pose_landmarker_full/float16/latest/"
    "pose_landmarker_full.task"
)
WHEEL_REQUIREMENT = "mediapipe==0.10.21"


def cache_root() -> Path:
    return Path(os.environ.get("LBP_CACHE") or Path.home() / ".cache" / "lbp_motion")


def _download(url: str, out: Path, timeout: float = 20.0) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(url, timeout=timeout) as response:
            fh.write(response.read())
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out


def _offline_bundle(models: Path) -> Path:
    out = models / "pose_landmarker_offline.task"
    if out.is_file():
        return out
    wheels = cache_root() / "registry" / "wheels"
    found = sorted(wheels.glob("mediapipe-0.10.21-*.whl"))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", str(wheels), WHEEL_REQUIREMENT]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            raise LbpError(
                "no MediaPipe pose model: pass --model PATH, or let lbp reach Google's model host "
                f"or the package registry ({WHEEL_REQUIREMENT})"
            )
        found = sorted(wheels.glob("mediapipe-0.10.21-*.whl"))
    log.info("building the offline pose model bundle from %s", found[0])
    return bundle_from_wheel(found[0], out)


def resolve_model(model_path: str | Path | None = None) -> Path:
    """The ``.task`` file to use (see the module docstring for the order)."""
    if model_path:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise LbpError(f"{path}: MediaPipe model file not found")
        return path
    models = cache_root() / "models"
    cached = models / "pose_landmarker_full.task"
    if cached.is_file():
        return cached
    if os.environ.get("LBP_OFFLINE") != "1":
        try:
            return _download(OFFICIAL_MODEL_URL, cached)
        except OSError as err:
            log.warning("could not download the official pose model (%s); building the offline bundle", err)
    return _offline_bundle(models)


class MediaPipePose:
    """BlazePose via ``mediapipe.tasks.vision.PoseLandmarker`` (VIDEO mode), returning
    COCO-17 keypoints in pixels with the landmark visibility as confidence.

    Args:
        model_path: a ``.task`` file; None resolves one (module docstring).
        num_poses: people to look for per frame (the tracker keeps one).
        min_confidence: detection and presence thresholds of the landmarker.
    """

    name = "mediapipe"
    layout = "coco17"

    def __init__(self, model_path: str | Path | None = None, num_poses: int = 2, min_confidence: float = 0.5) -> None:
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError:
            raise LbpError("the MediaPipe backend needs mediapipe: pip install 'lbp-motion[pose]'") from None
        self._mp = mp
        path = resolve_model(model_path)
        self.model = str(path)
        self.version = mp.__version__
        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.VIDEO,
            num_poses=num_poses,
            min_pose_detection_confidence=min_confidence,
            min_pose_presence_confidence=min_confidence,
        )
        self._landmarker = vision.PoseLandmarker.create_from_options(options)
        self._last_ms = -1

    def detect(self, frame: np.ndarray, time_ms: float) -> list[np.ndarray]:
        ms = max(int(round(time_ms)), self._last_ms + 1)  # strictly increasing
        self._last_ms = ms
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
        result = self._landmarker.detect_for_video(image, ms)
        h, w = frame.shape[:2]
        people = []
        for landmarks in result.pose_landmarks:
            blaze = np.array([[p.x * w, p.y * h, min(max(p.visibility, 0.0), 1.0)] for p in landmarks], np.float32)
            people.append(to_layout(blaze[None], "blazepose33", "coco17")[0])
        return people

    def close(self) -> None:
        self._landmarker.close()

    def __enter__(self) -> MediaPipePose:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
