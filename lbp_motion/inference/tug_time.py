"""The TUG time (Timed Up and Go: first rise to final sit) from a pose track
(:func:`estimate_tug_time`), for :func:`.predict.predict` and ``lbp predict-file``.

The rule works in torso lengths (camera distance does not matter) on the mid-hip's
height above the ankles and the mid-shoulder's position; :data:`TUG_RULE` names it in
``prediction.json``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lbp_motion.errors import LbpError

TUG_RULE = "hip-over-ankle height (torso lengths) for rise and sit; trunk leaving / regaining the seated posture for start and end; v1"


def _fill_short_gaps(values: np.ndarray, max_gap: int) -> np.ndarray:
    """Linear interpolation over NaN runs of at most ``max_gap`` samples (inside the track)."""
    out = values.copy()
    ok = np.flatnonzero(np.isfinite(values))
    if len(ok) < 2:
        return out
    for a, b in zip(ok[:-1], ok[1:]):
        if 1 < b - a <= max_gap + 1:
            out[a + 1 : b] = np.interp(np.arange(a + 1, b), [a, b], [values[a], values[b]])
    return out


def _moving_median(values: np.ndarray, size: int) -> np.ndarray:
    if size <= 1:
        return values
    half = size // 2
    out = np.full_like(values, np.nan)
    for t in range(len(values)):
        seg = values[max(0, t - half) : t + half + 1]
        seg = seg[np.isfinite(seg)]
        if len(seg) and np.isfinite(values[t]):
            out[t] = np.median(seg)
    return out


def _signals(
    keypoints: np.ndarray, layout: str, min_confidence: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per frame: the mid-hip's height above the lower visible ankle in torso lengths,
    and the mid-shoulder position (T, 2) in pixels (NaN where not visible); and the
    torso length (the recording's body scale, as the normalisation computes it)."""
    from lbp_motion.datasets.layouts import get_layout
    from lbp_motion.datasets.normalize import body_scale, visible_mask

    lay = get_layout(layout)
    hips, shoulders = lay.hip_indices(), lay.shoulder_indices()
    if hips is None or shoulders is None:
        raise LbpError(f"layout {layout!r} names no hips or shoulders")
    ankles = [lay.index(n) for n in ("left_ankle", "right_ankle") if n in lay.joints]
    if not ankles:
        raise LbpError(f"layout {layout!r} has no ankles")
    vis = visible_mask(keypoints, min_confidence)
    scale = body_scale(keypoints, lay, min_confidence)
    hip_ok = vis[:, hips[0]] & vis[:, hips[1]]
    hip_y = keypoints[:, list(hips), 1].mean(axis=1)
    ank_y = np.where(vis[:, ankles], keypoints[:, ankles, 1], np.nan)
    ankle = np.full(len(keypoints), np.nan)
    seen = np.isfinite(ank_y).any(axis=1)
    ankle[seen] = np.nanmax(ank_y[seen], axis=1)
    height = (ankle - hip_y) / scale  # image y points down
    height[~hip_ok] = np.nan
    sh_ok = vis[:, shoulders[0]] & vis[:, shoulders[1]]
    mid_sh = keypoints[:, list(shoulders), :2].mean(axis=1).astype(np.float64)
    mid_sh[~sh_ok] = np.nan
    return height.astype(np.float64), mid_sh, float(scale)


def hip_height(keypoints: np.ndarray, layout: str, min_confidence: float = 0.3) -> np.ndarray:
    """(T,) height of the mid-hip above the lower visible ankle, in torso lengths of the
    recording (median mid-shoulder to mid-hip distance); NaN where hips or ankles are
    not visible."""
    return _signals(keypoints, layout, min_confidence)[0]


def estimate_tug_time(
    keypoints: np.ndarray, layout: str, fps: float, *, min_confidence: float = 0.3
) -> dict[str, Any]:
    """The TUG time (first rise to final sit) from the hip trajectory.

    Rule (units: torso lengths, so camera distance does not matter):

    * ``h(t)``: height of the mid-hip above the ankles (:func:`hip_height`; gaps up to
      0.5 s interpolated, 0.3 s moving median). Seated levels: medians of the first and
      last 0.5 s of the track; standing level: the 90th percentile of ``h``.
    * The rise is where ``h`` first crosses half-way from the first seated level to
      standing; the final sit where it last comes back down through half-way to the
      last seated level.
    * **Start**: the last frame before the rise where the mid-shoulder is still within
      0.15 torso lengths of its seated position (first 0.5 s), i.e. where the trunk
      starts to lean forward; without shoulders, where ``h`` was within 10 % of the
      seated-standing range above seated.
    * **End**: the first frame after the final sit where the mid-shoulder is back within
      0.15 torso lengths of its final seated position (last 0.5 s) (or ``h`` within
      10 %).
    * TUG time = end - start.

    Returns ``time_s``, ``rise_s`` (start), ``sit_s`` (end), in seconds from the first
    frame, the levels, ``rule``; where no estimate is possible ``time_s`` is None and
    ``reason`` says why: the person is not seen seated at both ends, hips and ankles
    are seen in under half the frames, or the track starts after the rise / ends
    before the sit.
    """
    out: dict[str, Any] = {"time_s": None, "rise_s": None, "sit_s": None, "rule": TUG_RULE}
    n = len(keypoints)
    if n < 2 or fps <= 0:
        return {**out, "reason": "too few frames"}
    h, shoulder, scale = _signals(keypoints, layout, min_confidence)
    seen = np.isfinite(h)
    if seen.mean() < 0.5:
        return {
            **out,
            "reason": f"hips and ankles seen in {100 * seen.mean():.0f}% of the frames (< 50%)",
        }
    gap, smooth = max(1, int(round(0.5 * fps))), max(1, int(round(0.3 * fps)) | 1)
    h = _moving_median(_fill_short_gaps(h, gap), smooth)
    sh = np.stack(
        [_moving_median(_fill_short_gaps(shoulder[:, i], gap), smooth) for i in range(2)], axis=1
    )
    valid = np.flatnonzero(np.isfinite(h))
    edge = max(1, int(round(0.5 * fps)))
    first, last = valid[0], valid[-1]
    head, tail = slice(first, first + edge), slice(max(first, last - edge + 1), last + 1)
    seated_start, seated_end = float(np.nanmedian(h[head])), float(np.nanmedian(h[tail]))
    standing = float(np.nanpercentile(h, 90))
    out.update(
        seated_start=round(seated_start, 3),
        seated_end=round(seated_end, 3),
        standing=round(standing, 3),
    )
    if standing - seated_start < 0.25:
        return {
            **out,
            "reason": "the person is not seen seated at the start (hip height near standing)",
        }
    if standing - seated_end < 0.25:
        return {
            **out,
            "reason": "the person is not seen seated at the end (hip height near standing)",
        }
    h_lo = np.nan_to_num(h, nan=-np.inf)
    first_up = int(np.flatnonzero(h_lo >= seated_start + 0.5 * (standing - seated_start))[0])
    last_up = int(np.flatnonzero(h_lo >= seated_end + 0.5 * (standing - seated_end))[-1])

    def near(ref_slice: slice, frames: np.ndarray, fallback_level: float) -> np.ndarray:
        """Of ``frames``, those where the person is still in the seated posture of ``ref_slice``."""
        ref = (
            np.nanmedian(sh[ref_slice], axis=0)
            if np.isfinite(sh[ref_slice]).all(axis=1).any()
            else None
        )
        if ref is not None:
            dist = np.linalg.norm(sh[frames] - ref, axis=1) / scale
            return frames[np.nan_to_num(dist, nan=np.inf) <= 0.15]
        return frames[np.nan_to_num(h[frames], nan=np.inf) <= fallback_level]

    before = near(head, np.arange(first, first_up), seated_start + 0.1 * (standing - seated_start))
    if not len(before):
        return {**out, "reason": "the rise starts before the track does"}
    after = near(tail, np.arange(last_up, last + 1), seated_end + 0.1 * (standing - seated_end))
    if not len(after):
        return {**out, "reason": "the sit ends after the track does"}
    rise, sit = int(before[-1]), int(after[0])
    out.update(
        time_s=round((sit - rise) / fps, 3), rise_s=round(rise / fps, 3), sit_s=round(sit / fps, 3)
    )
    return out
