"""One main subject per video, tracked across frames; the others are ignored.

The rule (offline, after all frames are detected):

1. people are linked into tracks frame by frame: each track continues with the
   nearest unclaimed person (centroid of the confident joints) within ``max_jump`` x
   the image diagonal per processed frame since the track was last seen; a person
   nobody continues starts a new track;
2. the main subject is the track whose centroid travels farthest (summed step
   lengths), ties broken by the number of frames: the person doing a timed-up-and-go
   test walks 3 m and back, while bystanders, people sitting and spurious detections
   move little;
3. frames in which the main subject is not detected become rows of zeros (confidence
   0), so timing survives.

Limits: two people who cross paths closely can swap tracks; someone walking through
the background for longer than the test would be chosen instead of the patient.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def centroid(person: np.ndarray, min_confidence: float = 0.3) -> np.ndarray | None:
    """Mean x, y of the joints with confidence >= ``min_confidence``; None if none."""
    pts = person[person[:, 2] >= min_confidence, :2]
    return pts.mean(axis=0) if len(pts) else None


@dataclass
class Track:
    frames: list[int] = field(default_factory=list)
    people: list[np.ndarray] = field(default_factory=list)
    centres: list[np.ndarray] = field(default_factory=list)

    @property
    def path_length(self) -> float:
        if len(self.centres) < 2:
            return 0.0
        return float(np.linalg.norm(np.diff(np.stack(self.centres), axis=0), axis=1).sum())


def link_tracks(
    detections: list[list[np.ndarray]],
    image_size: tuple[int, int],
    max_jump: float = 0.1,
    min_confidence: float = 0.3,
) -> list[Track]:
    """Step 1 of the rule: ``detections[t]`` holds the people (J, 3) of frame t."""
    limit = max_jump * float(np.hypot(*image_size))
    tracks: list[Track] = []
    for t, people in enumerate(detections):
        found = [(p, c) for p in people if (c := centroid(p, min_confidence)) is not None]
        claimed: set[int] = set()
        for track in sorted(tracks, key=lambda tr: -tr.frames[-1]):  # most recently seen first
            gap = t - track.frames[-1]
            best, best_d = None, limit * gap
            for i, (_, c) in enumerate(found):
                d = float(np.linalg.norm(c - track.centres[-1]))
                if i not in claimed and d <= best_d:
                    best, best_d = i, d
            if best is not None:
                claimed.add(best)
                track.frames.append(t)
                track.people.append(found[best][0])
                track.centres.append(found[best][1])
        for i, (p, c) in enumerate(found):
            if i not in claimed:
                tracks.append(Track([t], [p], [c]))
    return tracks


def main_subject(
    detections: list[list[np.ndarray]],
    image_size: tuple[int, int],
    num_joints: int,
    max_jump: float = 0.1,
    min_confidence: float = 0.3,
) -> np.ndarray:
    """The main subject's keypoints (T, J, 3), zero rows where it is not detected."""
    out = np.zeros((len(detections), num_joints, 3), np.float32)
    tracks = link_tracks(detections, image_size, max_jump, min_confidence)
    if not tracks:
        return out
    best = max(tracks, key=lambda tr: (tr.path_length, len(tr.frames)))
    for t, person in zip(best.frames, best.people):
        out[t] = person
    return out
