"""Reading videos with PyAV: metadata (fps, frame count, rotation) and RGB frames."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")


class VideoError(RuntimeError):
    """A video that cannot be opened or decoded; the message names the file."""


@dataclass
class VideoInfo:
    """``fps``: frames per second; ``frame_count``: as the container reports it (0 if
    unknown); ``width``/``height`` after rotation; ``rotation``: degrees (0/90/180/270)."""

    path: Path
    fps: float
    frame_count: int
    width: int
    height: int
    rotation: int


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - the pose extra brings it
        raise VideoError("reading videos needs PyAV: pip install 'lbp-motion[pose]'") from None
    return av


def _fps(stream) -> float:
    """Frames per second of a PyAV video stream (30 where the container says nothing)."""
    return float(stream.average_rate or stream.guessed_rate or 0) or 30.0


def _rotation(frame) -> int:
    """Display rotation of a decoded frame in degrees (0, 90, 180, 270)."""
    return int(getattr(frame, "rotation", 0) or 0) % 360


def probe(path: str | Path) -> VideoInfo:
    """Metadata of a video; :class:`VideoError` if it cannot be opened."""
    av = _av()
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = _fps(stream)
            rotation = _rotation(next(container.decode(video=0)))
            width, height = stream.width, stream.height
            if rotation in (90, 270):
                width, height = height, width
            return VideoInfo(path, fps, int(stream.frames or 0), width, height, rotation)
    except (av.FFmpegError, IndexError, StopIteration, OSError) as err:
        raise VideoError(f"{path}: not a readable video ({type(err).__name__}: {err})") from None


def iter_frames(path: str | Path, stride: int = 1) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(frame index, time in ms, RGB frame (H, W, 3) uint8 C-contiguous)`` for every
    ``stride``-th frame, rotated upright. PyAV's arrays can be row-padded views, which
    pose models misread, so frames are made contiguous here."""
    av = _av()
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = _fps(stream)
            for index, frame in enumerate(container.decode(video=0)):
                if index % stride:
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                rotation = _rotation(frame)
                if rotation:
                    rgb = np.rot90(rgb, k=-rotation // 90)
                time_ms = float(frame.time) * 1000.0 if frame.time is not None else index * 1000.0 / fps
                yield index, time_ms, np.ascontiguousarray(rgb)
    except av.FFmpegError as err:
        raise VideoError(f"{path}: decoding failed ({type(err).__name__}: {err})") from None
