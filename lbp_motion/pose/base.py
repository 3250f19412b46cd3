"""The PoseEstimator interface: frames in, people's keypoints in a named layout out."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class PoseEstimator(Protocol):
    """A pose backend.

    Attributes:
        name: backend name stored in keypoint files (e.g. ``"mediapipe"``).
        model: the model it runs (a path or a name), stored too.
        version: the backend library's version.
        layout: the joint layout of what :meth:`detect` returns (e.g. ``"coco17"``).
    """

    name: str
    model: str
    version: str
    layout: str

    def detect(self, frame: np.ndarray, time_ms: float) -> list[np.ndarray]:
        """People in one RGB frame (H, W, 3) uint8: a list of (J, 3) float32 arrays of
        x, y in pixels and a confidence in [0, 1]; empty when nobody is found.
        ``time_ms`` must increase from call to call (video mode)."""
        ...

    def close(self) -> None: ...
