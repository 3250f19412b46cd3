"""One main subject per video: link people across frames into tracks, keep one track.

The rule (docs/pose.md, "Tracking"):

1. **Linking.** Frame by frame, the people detected are matched to the tracks seen in
   the last ``max_gap_s`` seconds by the Hungarian algorithm on a cost of centre distance
   (between bounding boxes, in units of the larger box height) minus box IoU. A pair
   may match only if its IoU is at least ``min_iou`` (0.3) or its centre distance at
   most ``max_distance`` (0.5 box heights) plus ``max_speed`` (1.5 box heights per
   second) times the time since the track was last seen. Unmatched people start new
   tracks; a track not seen for more than ``max_gap_s`` (1 s) ends.
2. **Choice.** The main subject is the track with the largest *moving presence*: the
   sum over its frames of box height x mean keypoint confidence x (0.05 + min(1,
   speed / 0.5)), where speed is that of the mid-hip in box heights per second,
   measured over 0.5 s. A frame counts fully when the person walks (0.5 box heights
   per second is about 0.85 m/s) and at 0.05 when they stand still. The person who is
   large, clearly seen and walking for longest wins: in a TUG video the patient, who
   rises, walks 3 m, turns, walks back and sits, over a clinician standing by or
   someone passing briefly in the background; where nobody moves, the largest and
   most present person. Other tracks are ignored.
3. **Output.** One row per processed frame: the main track's keypoints where it was
   seen, zeros (confidence 0) elsewhere, so timing survives missed detections.

Limits: a subject hidden for longer than ``max_gap_s`` comes back as a new track
and only the larger part is kept; two people crossing at the same size can swap; a
companion walking beside the patient for the whole test can be chosen instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lbp_motion.pose.base import PersonPose

TRACKING_RULE = "moving-presence/hungarian-iou-centroid/v1"


@dataclass
class Track:
    """A person followed across frames: ``frames`` are positions in the sequence."""

    id: int
    frames: list[int] = field(default_factory=list)
    poses: list[PersonPose] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    @property
    def last_frame(self) -> int:
        return self.frames[-1]

    def presence(self) -> float:
        """Sum over frames of box height x mean keypoint confidence."""
        return float(
            sum((b[3] - b[1]) * p.mean_confidence() for b, p in zip(self.boxes, self.poses))
        )

    def speed(self, span_s: float = 0.5) -> np.ndarray:
        """(frames,) speed of the body centre (:func:`body_centre`) in box heights per
        second, measured over ``span_s`` seconds around each frame (so that keypoint
        jitter of a person standing still does not count); 0 where the track is
        shorter than half of that around the frame."""
        times = np.asarray(self.times, dtype=np.float64)
        boxes = np.asarray(self.boxes)
        centre = np.stack([body_centre(p, b) for p, b in zip(self.poses, boxes)])
        height = max(float(np.median(boxes[:, 3] - boxes[:, 1])), 1e-6)
        if len(times) > 1:  # sparse frames (a large stride): at least ~2 frame steps
            span_s = max(span_s, 2.5 * float(np.median(np.diff(times))))
        out = np.zeros(len(times))
        lo = np.searchsorted(times, times - span_s / 2, side="left")
        hi = np.searchsorted(times, times + span_s / 2, side="right") - 1
        for k in range(len(times)):
            dt = times[hi[k]] - times[lo[k]]
            if dt >= span_s / 2:
                out[k] = np.linalg.norm(centre[hi[k]] - centre[lo[k]]) / dt / height
        return out

    def score(self) -> float:
        """The main-subject score, *moving presence*: the sum over frames of box height
        x mean keypoint confidence x (``STILL_WEIGHT`` + min(1, speed / ``WALKING_SPEED``))."""
        weights = np.asarray(
            [(b[3] - b[1]) * p.mean_confidence() for b, p in zip(self.boxes, self.poses)]
        )
        return float(
            (weights * (STILL_WEIGHT + np.minimum(1.0, self.speed() / WALKING_SPEED))).sum()
        )


#: weight of a frame where the person stands still (so that, when nobody moves, the
#: largest and most present person is kept)
STILL_WEIGHT = 0.05
#: box heights per second from which a person counts as fully moving (~0.85 m/s for a
#: person of 1.7 m: an unhurried walk)
WALKING_SPEED = 0.5


def body_centre(pose: PersonPose, box: np.ndarray, min_confidence: float = 0.3) -> np.ndarray:
    """Where the body is: the mid-hip where the layout names hips and both are seen
    (arm and head movements do not move it), else the median of the keypoints with
    confidence >= ``min_confidence``, else the box centre."""
    from lbp_motion.datasets.layouts import LAYOUTS

    kp = pose.keypoints
    layout = LAYOUTS.get(pose.layout)
    hips = layout.hip_indices() if layout is not None and layout.num_joints == len(kp) else None
    if hips is not None and min(kp[hips[0], 2], kp[hips[1], 2]) >= min_confidence:
        return (kp[hips[0], :2] + kp[hips[1], :2]).astype(np.float64) / 2
    ok = kp[:, 2] >= min_confidence
    if ok.any():
        return np.median(kp[ok, :2].astype(np.float64), axis=0)
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def link_tracks(
    detections: Sequence[Sequence[PersonPose | np.ndarray]],
    times_s: Sequence[float] | None = None,
    *,
    max_gap_s: float = 1.0,
    max_distance: float = 0.5,
    max_speed: float = 1.5,
    min_iou: float = 0.3,
) -> list[Track]:
    """Link per-frame people into tracks (step 1 of the rule in the module docstring).

    Args:
        detections: people per frame (:class:`PersonPose`, or plain (J, 3) arrays).
        times_s: time of each frame in seconds (default: 30 frames per second).
        max_gap_s: a track not seen for longer ends.
        max_distance: largest centre distance, in box heights, between consecutive
            frames 1/30 s apart ...
        max_speed: ... plus this many box heights per second of time between them.
        min_iou: boxes overlapping at least this much may always match.
    """
    from scipy.optimize import linear_sum_assignment

    times = (
        np.arange(len(detections)) / 30.0
        if times_s is None
        else np.asarray(times_s, dtype=np.float64)
    )
    tracks: list[Track] = []
    for t, people in enumerate(detections):
        people = [
            p if isinstance(p, PersonPose) else PersonPose(np.asarray(p, np.float32), "")
            for p in people
        ]
        dets = [(p, b) for p in people if (b := p.bounding_box()) is not None and b[3] > b[1]]
        live = [tr for tr in tracks if times[t] - times[tr.last_frame] <= max_gap_s + 1e-9]
        matched: set[int] = set()
        if dets and live:
            big = 1e6
            cost = np.full((len(live), len(dets)), big)
            for i, tr in enumerate(live):
                last = tr.boxes[-1]
                limit = max_distance + max_speed * max(
                    0.0, times[t] - times[tr.last_frame] - 1 / 30
                )
                for j, (_, box) in enumerate(dets):
                    iou = box_iou(last, box)
                    height = max(last[3] - last[1], box[3] - box[1], 1e-6)
                    dist = float(np.linalg.norm(_centre(last) - _centre(box)) / height)
                    if iou >= min_iou or dist <= limit:
                        cost[i, j] = dist - iou
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols):
                if cost[i, j] < big:
                    live[i].frames.append(t)
                    live[i].poses.append(dets[j][0])
                    live[i].boxes.append(dets[j][1])
                    live[i].times.append(float(times[t]))
                    matched.add(j)
        for j, (pose, box) in enumerate(dets):
            if j not in matched:
                tracks.append(Track(len(tracks), [t], [pose], [box], [float(times[t])]))
    return tracks


@dataclass
class Subject:
    """The main subject of a video: ``keypoints`` (T, J, 3), one row per frame."""

    keypoints: np.ndarray
    track: Track | None
    num_tracks: int

    @property
    def detected(self) -> np.ndarray:
        """(T,) bool: frames where the subject was seen."""
        return self.keypoints[..., 2].max(axis=1) > 0 if len(self.keypoints) else np.zeros(0, bool)


def main_subject(
    detections: Sequence[Sequence[PersonPose]],
    num_joints: int,
    times_s: Sequence[float] | None = None,
    **link_options: float,
) -> Subject:
    """Track everyone, keep the track with the largest moving presence (the rule above)."""
    tracks = link_tracks(detections, times_s, **link_options)
    keypoints = np.zeros((len(detections), num_joints, 3), dtype=np.float32)
    if not tracks:
        return Subject(keypoints, None, 0)
    best = max(tracks, key=lambda tr: (tr.score(), -tr.id))
    for t, pose in zip(best.frames, best.poses):
        keypoints[t] = pose.keypoints
    return Subject(keypoints, best, len(tracks))
