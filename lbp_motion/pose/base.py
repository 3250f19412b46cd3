"""The pose-estimator interface and the backend registry.

A backend turns frames (RGB ``uint8`` arrays ``(H, W, 3)``) into, per frame, a list of
people, each a :class:`PersonPose`: ``(J, 3)`` keypoints (x, y in pixels of the frame
it was given, confidence in [0, 1]) in a named joint layout (see
:mod:`lbp_motion.datasets.layouts`). Everything after that (tracking one subject, layout
conversion, writing the keypoint format) is shared, so a backend is only this.

Backends are found by name: the built-in ones, those added with
:func:`register_backend`, and those of installed packages in the entry-point group
``lbp_motion.pose_backends`` (``name = "package.module:Class"``). Heavy libraries
(mediapipe, detectron2) are imported only when a backend is created.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from lbp_motion.errors import LbpError

ENTRY_POINT_GROUP = "lbp_motion.pose_backends"


class BackendUnavailable(LbpError):
    """A pose backend cannot run here (library missing, model not found); the message
    says what to install or set."""


@dataclass
class PersonPose:
    """One person in one frame.

    Attributes:
        keypoints: (J, 3) float32: x, y in pixels (origin top-left, y down) and a
            confidence in [0, 1]; a joint that was not found is (0, 0, 0).
        layout: name of the joint layout of ``keypoints``.
        score: the detector's confidence that this is a person (backend-specific scale
            in [0, 1]; used to rank people, not stored).
        box: (x0, y0, x1, y1) in pixels, or None to derive it from the keypoints.
    """

    keypoints: np.ndarray
    layout: str
    score: float = 1.0
    box: np.ndarray | None = None

    def bounding_box(self, min_confidence: float = 0.1) -> np.ndarray | None:
        """(x0, y0, x1, y1): ``box`` if given, else the extent of the keypoints with
        confidence >= ``min_confidence``; None without any."""
        if self.box is not None:
            return np.asarray(self.box, dtype=np.float64)
        ok = self.keypoints[:, 2] >= max(min_confidence, 1e-6)
        if not ok.any():
            return None
        pts = self.keypoints[ok, :2].astype(np.float64)
        return np.concatenate([pts.min(axis=0), pts.max(axis=0)])

    def mean_confidence(self) -> float:
        return float(self.keypoints[:, 2].mean()) if len(self.keypoints) else 0.0


class PoseEstimator(ABC):
    """Frames in, people out. Subclasses set ``name`` and ``layout`` and implement
    :meth:`estimate`; see docs/pose.md ("Adding a backend").

    A video is processed as: :meth:`start_video`, then :meth:`estimate` on batches of
    frames in time order, then (after the last video) :meth:`close`. Use it as a
    context manager to close it.
    """

    #: backend name stored in keypoint files (``backend``)
    name: ClassVar[str] = ""
    #: joint layout of the keypoints :meth:`estimate` returns
    layout: ClassVar[str] = ""
    #: frames per :meth:`estimate` call that suit the backend (batched inference)
    batch_size: int = 1

    def info(self) -> dict[str, str]:
        """What made the keypoints, stored in each file: ``backend``, ``model`` (file or
        model name), ``backend_version`` (the library's version) and optionally
        ``model_source`` (where the weights came from)."""
        return {"backend": self.name, "model": "", "backend_version": ""}

    def start_video(self, fps: float, image_size: tuple[int, int]) -> None:  # noqa: B027
        """Called before the first frame of each video (backends that track across
        frames reset their state here)."""

    @abstractmethod
    def estimate(
        self, frames: Sequence[np.ndarray], timestamps_ms: Sequence[int]
    ) -> list[list[PersonPose]]:
        """People in each frame. ``frames``: RGB uint8 ``(H, W, 3)`` arrays of one video,
        in time order; ``timestamps_ms``: their times (strictly increasing within a
        video). Returns one list per frame (possibly empty)."""

    def close(self) -> None:  # noqa: B027
        """Release models and sessions."""

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Built-in backends: name -> "module:Class" (imported when created).
BUILTIN_BACKENDS: dict[str, str] = {
    "mediapipe": "lbp_motion.pose.mediapipe_backend:MediaPipePoseEstimator",
    "detectron2": "lbp_motion.pose.detectron2_backend:Detectron2PoseEstimator",
}
_REGISTERED: dict[str, str | Callable[..., PoseEstimator]] = {}


def register_backend(name: str, factory: str | Callable[..., PoseEstimator]) -> None:
    """Make ``name`` a backend: ``factory`` is a class (or callable returning a
    :class:`PoseEstimator`) taking the backend's keyword options, or its
    ``"module:attribute"`` path."""
    _REGISTERED[name] = factory


def _entry_point_backends() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_backends() -> list[str]:
    """Names of every known backend (installed or not)."""
    return sorted({**BUILTIN_BACKENDS, **_entry_point_backends(), **_REGISTERED})


def _load(target: str) -> Callable[..., PoseEstimator]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def create_estimator(name: str, **options: Any) -> PoseEstimator:
    """A ready backend by name with its options (e.g. ``model=``, ``device=``).

    Raises :class:`BackendUnavailable` for an unknown name or a backend whose library
    is missing (the message says how to install it).
    """
    factory = (
        _REGISTERED.get(name) or BUILTIN_BACKENDS.get(name) or _entry_point_backends().get(name)
    )
    if factory is None:
        raise BackendUnavailable(
            f"unknown pose backend {name!r}; known backends: {available_backends()}"
        )
    if isinstance(factory, str):
        factory = _load(factory)
    return factory(**options)
