"""Reading videos: frames as RGB arrays, with fps, frame count and rotation.

PyAV (FFmpeg) is used when installed, else OpenCV. Rotation metadata (phones store
portrait videos as landscape frames plus a display rotation) is applied, so frames,
keypoints and ``image_size`` are in the orientation a player shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lbp_motion.errors import LbpError

VIDEO_EXTENSIONS = (
    ".mp4",
    ".mov",
    ".avi",
    ".mkv",
    ".m4v",
    ".webm",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".mts",
)


class VideoError(LbpError):
    """A video cannot be opened or decoded; the message names the file."""


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_videos(folder: str | Path) -> list[Path]:
    """Video files directly in ``folder`` (by extension), sorted by name."""
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and is_video(p) and not p.name.startswith(".")
    )


@dataclass(frozen=True)
class VideoInfo:
    """What a video says about itself.

    ``width``/``height`` are after rotation; ``rotation`` is the clockwise rotation in
    degrees (0, 90, 180, 270) applied to the stored frames; ``frame_count`` may be an
    estimate (from the duration) where the container does not store it.
    """

    path: Path
    fps: float
    frame_count: int
    width: int
    height: int
    rotation: int
    codec: str
    reader: str

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.width, self.height)


@dataclass
class Frame:
    index: int  # position in the video (0-based, counting every decoded frame)
    time_s: float
    image: np.ndarray  # RGB uint8 (H, W, 3), rotation applied


def _rotate(image: np.ndarray, clockwise: int) -> np.ndarray:
    if clockwise == 90:
        return np.ascontiguousarray(np.rot90(image, k=-1))
    if clockwise == 180:
        return np.ascontiguousarray(image[::-1, ::-1])
    if clockwise == 270:
        return np.ascontiguousarray(np.rot90(image, k=1))
    return image


def _clockwise(display_rotation: float) -> int:
    """FFmpeg's display-matrix angle (counter-clockwise) -> clockwise turn to apply,
    as ``ffmpeg``'s autorotate does: 0, 90, 180 or 270."""
    return int(round(-float(display_rotation) / 90.0)) % 4 * 90


class VideoReader:
    """Open a video; ``info`` describes it and :meth:`frames` yields decoded frames.

    Args:
        path: the video file.
        backend: ``"auto"`` (PyAV if installed, else OpenCV), ``"pyav"`` or ``"opencv"``.
    Raises:
        VideoError: the file is missing, unreadable or holds no video stream.
    """

    def __init__(self, path: str | Path, backend: str = "auto") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError(f"{self.path}: file not found")
        if backend == "auto":
            try:
                import av  # noqa: F401

                backend = "pyav"
            except ImportError:
                backend = "opencv"
        self.backend = backend
        self._container = None
        self._capture = None
        if backend == "pyav":
            self.info = self._open_pyav()
        elif backend == "opencv":
            self.info = self._open_opencv()
        else:
            raise ValueError(f"unknown video reader {backend!r}; expected auto, pyav or opencv")

    # -- PyAV --------------------------------------------------------------------------
    def _open_pyav(self) -> VideoInfo:
        import av

        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, OSError, ValueError) as err:
            raise VideoError(f"{self.path}: cannot read video ({err})") from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(f"{self.path}: no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if not fps > 0:
            raise VideoError(f"{self.path}: the video stream has no frame rate")
        count = int(stream.frames or 0)
        if count <= 0:
            duration = (
                float(stream.duration * stream.time_base)
                if stream.duration and stream.time_base
                else (self._container.duration or 0) / 1e6
            )
            count = int(round(duration * fps))
        # rotation: decode the first frame (its display matrix is where FFmpeg puts it)
        try:
            first = next(self._container.decode(stream), None)
        except (av.FFmpegError, ValueError) as err:
            raise VideoError(f"{self.path}: cannot decode video ({err})") from None
        if first is None:
            raise VideoError(f"{self.path}: the video holds no frames")
        rotation = _clockwise(getattr(first, "rotation", 0) or 0)
        w, h = first.width, first.height
        if rotation in (90, 270):
            w, h = h, w
        self._container.seek(0)
        return VideoInfo(self.path, fps, count, w, h, rotation, stream.codec_context.name, "pyav")

    def _frames_pyav(self, stride: int) -> Iterator[Frame]:
        import av

        stream = self._container.streams.video[0]
        self._container.seek(0)
        index = 0
        try:
            for frame in self._container.decode(stream):
                if index % stride == 0:
                    time_s = float(frame.time) if frame.time is not None else index / self.info.fps
                    image = _rotate(frame.to_ndarray(format="rgb24"), self.info.rotation)
                    yield Frame(index, time_s, image)
                index += 1
        except (av.FFmpegError, ValueError) as err:
            raise VideoError(f"{self.path}: decoding failed after {index} frames ({err})") from None

    # -- OpenCV ------------------------------------------------------------------------
    def _open_opencv(self) -> VideoInfo:
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise VideoError(f"{self.path}: cannot read video (OpenCV could not open it)")
        self._capture = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not fps > 0:
            raise VideoError(f"{self.path}: the video stream has no frame rate")
        # OpenCV applies the rotation itself (CAP_PROP_ORIENTATION_AUTO) and reports the
        # clockwise angle it applied
        meta = int(round(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0)) % 360
        ok, first = cap.read()
        if not ok:
            raise VideoError(f"{self.path}: the video holds no frames")
        h, w = first.shape[:2]
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        return VideoInfo(
            self.path, fps, count, w, h, int(round(meta / 90)) % 4 * 90, "opencv", "opencv"
        )

    def _frames_opencv(self, stride: int) -> Iterator[Frame]:
        import cv2

        cap = self._capture
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        index = 0
        while True:
            if index % stride == 0:
                ok, bgr = cap.read()
                if not ok:
                    break
                yield Frame(index, index / self.info.fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            elif not cap.grab():
                break
            index += 1

    # -- common ------------------------------------------------------------------------
    def frames(self, stride: int = 1) -> Iterator[Frame]:
        """Frames ``0, stride, 2 * stride, ...`` (every frame is decoded; only those are
        converted). Raises :class:`VideoError` if decoding breaks off."""
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if self.backend == "pyav":
            return self._frames_pyav(stride)
        return self._frames_opencv(stride)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def probe(path: str | Path, backend: str = "auto") -> VideoInfo:
    """:class:`VideoInfo` of a video (opens and closes it)."""
    with VideoReader(path, backend) as reader:
        return reader.info
