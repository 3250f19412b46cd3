"""Position and scale normalisation of 2D skeletons (the recipe of docs/data-format.md).

Recipe, for a window of keypoints (T, J, 3) in pixels with confidences:

1. a joint is *visible* when its confidence >= ``min_confidence``; others are masked;
2. the centre is the mean mid-hip (midpoint of the two hips) over the window's frames
   where both hips are visible; without any, the mean of all visible joints;
3. the scale is the body size of the whole recording: the median torso length
   (mid-shoulder to mid-hip) over frames where hips and shoulders are visible; without
   any, the median diagonal of the visible joints' bounding box;
4. ``x' = (x - cx) / s``, ``y' = -(y - cy) / s`` (y points up), and a third channel holds
   the visibility flag (1/0); masked joints are (0, 0, 0).

Centring per window keeps the motion inside the window (walking speed shows as the hip
track moving) while removing where the person stands in the image; scaling by the
recording's body size removes camera distance without letting a bent trunk rescale
single frames. Both are invariant to translating and scaling the whole recording.
"""

from __future__ import annotations

import numpy as np

from lbp_motion.datasets.format import DataFormatError
from lbp_motion.datasets.layouts import Layout

#: the largest spread of one frame's visible joints, in body scales, that is believable;
#: beyond it the scale (or a coordinate) is broken and the features would be absurd
MAX_SPREAD_IN_SCALES = 1e4


def visible_mask(keypoints: np.ndarray, min_confidence: float) -> np.ndarray:
    """(T, J) bool: joints with confidence >= ``min_confidence`` (and > 0)."""
    conf = keypoints[..., 2]
    return (conf >= min_confidence) & (conf > 0)


def _mid(keypoints: np.ndarray, visible: np.ndarray, pair: tuple[int, int] | None):
    """Midpoints (T, 2) of a joint pair and (T,) whether both joints are visible."""
    if pair is None:
        return None, np.zeros(keypoints.shape[0], dtype=bool)
    a, b = pair
    ok = visible[:, a] & visible[:, b]
    return (keypoints[:, a, :2] + keypoints[:, b, :2]) / 2.0, ok


def body_scale(keypoints: np.ndarray, layout: Layout, min_confidence: float = 0.3) -> float:
    """Body size of a recording in pixels (step 3 of the recipe); 1.0 if nothing is visible."""
    vis = visible_mask(keypoints, min_confidence)
    hips, hip_ok = _mid(keypoints, vis, layout.hip_indices())
    shoulders, sh_ok = _mid(keypoints, vis, layout.shoulder_indices())
    ok = hip_ok & sh_ok
    if ok.any():
        torso = np.linalg.norm(shoulders[ok] - hips[ok], axis=-1)
        torso = torso[torso > 0]
        if torso.size:
            return float(np.median(torso))
    diagonals = []
    for t in np.flatnonzero(vis.any(axis=1)):
        pts = keypoints[t, vis[t], :2]
        diagonals.append(np.linalg.norm(pts.max(axis=0) - pts.min(axis=0)))
    diagonals = [d for d in diagonals if d > 0]
    return float(np.median(diagonals)) if diagonals else 1.0


def skeleton_centre(
    keypoints: np.ndarray, layout: Layout, min_confidence: float = 0.3
) -> np.ndarray:
    """Centre (2,) in pixels of a window (step 2 of the recipe); zeros if nothing is visible."""
    vis = visible_mask(keypoints, min_confidence)
    hips, ok = _mid(keypoints, vis, layout.hip_indices())
    if ok.any():
        return hips[ok].mean(axis=0)
    if vis.any():
        return keypoints[..., :2][vis].mean(axis=0)
    return np.zeros(2, dtype=keypoints.dtype)


def normalize_skeleton(
    keypoints: np.ndarray,
    layout: Layout,
    *,
    min_confidence: float = 0.3,
    scale: float | None = None,
) -> np.ndarray:
    """Normalise a window ``keypoints`` (T, J, 3) -> (T, J, 3) float32 = (x', y', visible).

    ``scale`` is the recording's body size (see :func:`body_scale`); computed from this
    window when None.
    """
    kp = np.asarray(keypoints, dtype=np.float32)
    vis = visible_mask(kp, min_confidence)
    if scale is None:
        scale = body_scale(kp, layout, min_confidence)
    centre = skeleton_centre(kp, layout, min_confidence)
    out = np.zeros_like(kp)
    out[..., 0] = (kp[..., 0] - centre[0]) / scale
    out[..., 1] = -(kp[..., 1] - centre[1]) / scale
    out[..., 2] = 1.0
    out[~vis] = 0.0
    return out


def check_scale(keypoints: np.ndarray, scale: float, *, min_confidence: float, source: str) -> None:
    """Raise :class:`DataFormatError` naming ``source`` and a frame unless ``scale`` (the
    recording's :func:`body_scale`) is finite, positive and believable: no frame's visible
    joints may spread over more than :data:`MAX_SPREAD_IN_SCALES` body scales."""
    if not (np.isfinite(scale) and scale > 0):
        raise DataFormatError(
            f"{source}: body scale is {scale:g} pixels; expected a positive finite size"
        )
    vis = visible_mask(keypoints, min_confidence)
    frames = np.flatnonzero(vis.any(axis=1))
    if not len(frames):
        return
    xy = np.where(vis[frames, :, None], keypoints[frames, :, :2].astype(np.float64), np.nan)
    spread = np.linalg.norm(np.nanmax(xy, axis=1) - np.nanmin(xy, axis=1), axis=-1)
    worst = int(np.argmax(spread))
    if spread[worst] > MAX_SPREAD_IN_SCALES * scale:
        raise DataFormatError(
            f"{source}: body scale (median torso length) is {scale:g} pixels but frame {frames[worst]}'s "
            f"visible joints spread over {spread[worst]:g} pixels; check the hip and shoulder coordinates"
        )
