"""MediaPipe pose-landmarker backend (33 BlazePose landmarks, Tasks API, CPU).

The model file (a ``.task`` bundle) is found in this order (:func:`resolve_model`):

1. the path given (``model=`` / ``--model``);
2. a cached copy in ``<cache>/models/``: the official bundle if it was downloaded
   before, else the offline bundle if it was built before;
3. the official model, downloaded once from Google's storage into ``<cache>/models/``
   (skipped when ``LBP_OFFLINE=1`` or ``download=False``);
4. the offline bundle built from the mediapipe 0.10.21 wheel on the package registry
   (see :mod:`.bundle`), so a machine that reaches only a package mirror still works.

``<cache>`` is ``$LBP_CACHE`` or ``~/.cache/lbp_motion``. Delete a cached bundle to
make the next run look again.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lbp_motion.atomic import write_bytes
from lbp_motion.pose.base import BackendUnavailable, PersonPose, PoseEstimator
from lbp_motion.pose.bundle import BUNDLE_NAME, build_offline_bundle, cache_root, is_pose_bundle

#: The official pose-landmarker model ("full" variant, the network of the offline bundle).
OFFICIAL_MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/pose_landmarker/"
    "pose_landmarker_full/float16/latest/pose_landmarker_full.task"
)
OFFICIAL_MODEL_NAME = "pose_landmarker_full.task"
DOWNLOAD_TIMEOUT_S = 20.0
INSTALL_HINT = "pip install 'lbp-motion[pose]' (or: pip install 'mediapipe>=1.2.2')"


@dataclass(frozen=True)
class ResolvedModel:
    """A pose-landmarker bundle and where it came from (stored in keypoint files)."""

    path: Path
    source: str  # "config", "cache", "download" or "offline-bundle"
    description: str


def _describe(path: Path, source: str) -> str:
    if path.name == BUNDLE_NAME:
        what = "pose_landmarker_full built from the mediapipe 0.10.21 wheel"
    elif path.name == OFFICIAL_MODEL_NAME:
        what = f"pose_landmarker_full from {OFFICIAL_MODEL_URL}"
    else:
        what = str(path)
    return f"{what} ({source})"


def offline() -> bool:
    """``LBP_OFFLINE`` set to 1/true/yes: never download models."""
    return os.environ.get("LBP_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def download_official_model(
    dest: Path, url: str = OFFICIAL_MODEL_URL, timeout: float = DOWNLOAD_TIMEOUT_S
) -> Path:
    """Download the official bundle to ``dest`` atomically; raises ``OSError`` when the
    host cannot be reached and ``ValueError`` when the answer is not a pose bundle."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed https URL
        data = response.read()
    write_bytes(dest, data)
    if not is_pose_bundle(dest):
        dest.unlink(missing_ok=True)
        raise ValueError(f"{url} did not return a pose-landmarker bundle")
    return dest


def resolve_model(
    path: str | Path | None = None, *, download: bool | None = None, cache: str | Path | None = None
) -> ResolvedModel:
    """The pose-landmarker bundle to use (order in the module docstring).

    Args:
        path: an explicit ``.task`` file; an error if it does not exist.
        download: allow the official download; default: unless ``LBP_OFFLINE`` is set.
        cache: the cache root (default ``$LBP_CACHE`` or ``~/.cache/lbp_motion``).
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise BackendUnavailable(f"{p}: pose model file not found")
        return ResolvedModel(p, "config", _describe(p, "config"))
    models = (Path(cache) if cache is not None else cache_root()) / "models"
    official, bundle = models / OFFICIAL_MODEL_NAME, models / BUNDLE_NAME
    for p in (official, bundle):
        if p.is_file() and is_pose_bundle(p):
            return ResolvedModel(p, "cache", _describe(p, "cache"))
    download = (not offline()) if download is None else download
    problems = []
    if download:
        try:
            download_official_model(official)
            return ResolvedModel(official, "download", _describe(official, "download"))
        except (OSError, ValueError) as err:
            problems.append(f"download from {OFFICIAL_MODEL_URL} failed ({err})")
    try:
        built = build_offline_bundle(bundle, registry=models.parent / "registry")
    except BackendUnavailable as err:
        problems.append(str(err))
        raise BackendUnavailable(
            "no MediaPipe pose model: " + "; ".join(problems) + ". Pass a .task file with --model"
        ) from None
    return ResolvedModel(built, "offline-bundle", _describe(built, "offline-bundle"))


class MediaPipePoseEstimator(PoseEstimator):
    """MediaPipe ``PoseLandmarker`` (Tasks API) in VIDEO running mode on CPU.

    Args:
        model: a ``.task`` bundle; default: see :func:`resolve_model`.
        num_poses: people the landmarker reports per frame (2 by default, so that a
            second person cannot hide the subject; the tracker keeps one).
        min_detection_confidence, min_presence_confidence, min_tracking_confidence:
            the landmarker's thresholds.
        max_image_side: frames whose longer side exceeds it are downscaled before
            inference (keypoints are returned in the original pixels); None: never.
        download: allow downloading the official model (default: unless LBP_OFFLINE).

    Confidence of a landmark: ``min(visibility, presence)``; landmarks outside the
    frame are written as missing (zeros).
    """

    name = "mediapipe"
    layout = "blazepose33"
    batch_size = 8  # frames handed over per call; the landmarker itself runs one by one

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        num_poses: int = 2,
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        max_image_side: int | None = 1280,
        download: bool | None = None,
        device: str = "cpu",
    ) -> None:
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as err:
            raise BackendUnavailable(
                f"the mediapipe backend needs mediapipe ({err}); {INSTALL_HINT}"
            ) from None
        if device not in ("cpu", "auto"):
            raise BackendUnavailable(f"the mediapipe backend runs on CPU only (device={device!r})")
        self._mp, self._vision, self._base_options = mp, vision, BaseOptions
        self.model = resolve_model(model, download=download)
        self.num_poses = num_poses
        self.thresholds = (
            min_detection_confidence,
            min_presence_confidence,
            min_tracking_confidence,
        )
        self.max_image_side = max_image_side
        self._landmarker = None
        self._last_ts = -1

    def info(self) -> dict[str, str]:
        return {
            "backend": self.name,
            "model": self.model.path.name,
            "model_source": self.model.description,
            "backend_version": str(getattr(self._mp, "__version__", "?")),
        }

    def _open(self):
        _ignore_sigprof()
        vision = self._vision
        det, pres, track = self.thresholds
        options = vision.PoseLandmarkerOptions(
            base_options=self._base_options(model_asset_path=str(self.model.path)),
            running_mode=vision.RunningMode.VIDEO,
            num_poses=self.num_poses,
            min_pose_detection_confidence=det,
            min_pose_presence_confidence=pres,
            min_tracking_confidence=track,
        )
        return vision.PoseLandmarker.create_from_options(options)

    def start_video(self, fps: float, image_size: tuple[int, int]) -> None:
        # VIDEO mode tracks across frames and needs increasing timestamps: one session per video
        self.close()
        self._landmarker = self._open()
        self._last_ts = -1

    def estimate(
        self, frames: Sequence[np.ndarray], timestamps_ms: Sequence[int]
    ) -> list[list[PersonPose]]:
        if self._landmarker is None:
            self.start_video(30.0, (0, 0))
        out = []
        for frame, ts in zip(frames, timestamps_ms):
            h, w = frame.shape[:2]
            image = frame
            if self.max_image_side and max(h, w) > self.max_image_side:
                import cv2

                s = self.max_image_side / max(h, w)
                image = cv2.resize(
                    frame, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA
                )
            ts = max(int(ts), self._last_ts + 1)
            self._last_ts = ts
            mp_image = self._mp.Image(
                image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)
            )
            result = self._landmarker.detect_for_video(mp_image, ts)
            out.append([landmarks_to_pose(lms, (w, h)) for lms in result.pose_landmarks])
        return out

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None


def _ignore_sigprof() -> None:
    """Ignore SIGPROF unless someone handles it.

    libmediapipe.so carries a CPU profiler that arms a per-thread SIGPROF timer in each
    thread it starts and sets SIGPROF to "ignore" from C, behind Python's back. Code
    that later restores "the previous" handlers from Python's view (Lightning's
    signal connector does, after every fit) resets SIGPROF to the default action, and
    the next timer tick then kills the process ("Profiling timer expired"). Ignoring
    it from Python keeps Python's view right. A handler someone installed (a sampling
    profiler) is left alone.
    """
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(
        signal.SIGPROF
    ) in (
        signal.SIG_DFL,
        None,
    ):
        signal.signal(signal.SIGPROF, signal.SIG_IGN)


def landmarks_to_pose(landmarks, image_size: tuple[int, int]) -> PersonPose:
    """One person's normalised landmarks (objects with x, y, visibility, presence) ->
    a :class:`PersonPose` in pixels of ``image_size`` (width, height), blazepose33."""
    w, h = image_size
    arr = np.array(
        [
            (
                lm.x,
                lm.y,
                1.0 if lm.visibility is None else lm.visibility,
                1.0 if lm.presence is None else lm.presence,
            )
            for lm in landmarks
        ],
        dtype=np.float64,
    )
    kp = np.zeros((len(arr), 3), dtype=np.float32)
    inside = (arr[:, 0] >= 0) & (arr[:, 0] <= 1) & (arr[:, 1] >= 0) & (arr[:, 1] <= 1)
    conf = np.clip(np.minimum(arr[:, 2], arr[:, 3]), 0.0, 1.0)
    kp[:, 0] = arr[:, 0] * w
    kp[:, 1] = arr[:, 1] * h
    kp[:, 2] = conf
    kp[~inside] = 0.0
    pts = arr[:, :2] * (w, h)
    box = np.concatenate([pts.min(axis=0), pts.max(axis=0)])  # all 33 landmarks, inside or not
    return PersonPose(kp, "blazepose33", score=float(conf.mean()), box=box)
