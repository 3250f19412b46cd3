"""Input streams of keypoint windows, as in skeleton action recognition (PySKL's
``GenSkeFeat``: joint, bone, joint motion, bone motion).

Every stream is (T, J, 3) per window: two coordinates and a flag, computed from the
normalised joints ``(x', y', visible)`` of :func:`~.normalize.normalize_skeleton`:

* ``joint``: the normalised joints themselves (x', y', visible);
* ``bone``: child minus parent on the layout's tree (:attr:`.layouts.Layout.parents`),
  flag = both joints visible; the root's bone is (0, 0) with the root's visibility;
* ``joint_motion``: frame-to-frame difference of the joints, ``x[t] - x[t-1]``, flag
  = the joint visible in both frames; the first frame of the window is (0, 0, 0);
* ``bone_motion``: the same difference of the bones.

A coordinate whose flag is 0 is 0, so a missing joint never yields a difference
against the (0, 0) it is stored as. Streams are concatenated per frame in the order
given, joint-major within a stream: ``(T, F)`` with ``F = frame streams * J * 3``.
``["joint"]`` is exactly the features lbp_motion used before streams existed.

One more stream describes the whole recording, for labels that belong to the person:

* ``recording_stats``: the recording's context, the same in every real frame of every
  window of a recording: the mean over all the recording's windows of their window
  statistics (:func:`~lbp_motion.models.statistics.window_statistics` of the frame
  streams above: per channel mean, standard deviation and mean absolute frame-to-frame
  difference over real frames), ``3 * F`` numbers for ``F`` frame-stream channels. It
  lets a window model decide with what the whole recording shows (sit-to-stand, walk
  and turn together), as the ``recording_stats`` baseline of ``lbp cv`` does. It is
  computed by the dataset, which sees every window of a recording
  (:class:`~lbp_motion.datamodules.samples.PoseWindowDataset`), from windows that are
  never augmented, and it must be the last stream listed: ``(T, 4F)`` in all (zeros on
  masked frames, as every stream).

Pure numpy on arrays (leading batch dimensions allowed), so the DataModule, ``lbp
predict`` and augmentation code compute the same thing without a Trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from lbp_motion.datasets.layouts import Layout
from lbp_motion.errors import ConfigError

Stream = Literal["joint", "bone", "joint_motion", "bone_motion", "recording_stats"]
#: the streams computed frame by frame from a window's joints
FRAME_STREAMS: tuple[str, ...] = ("joint", "bone", "joint_motion", "bone_motion")
#: the stream of the whole recording (module docstring), appended after the frame streams
RECORDING_STATS = "recording_stats"
STREAMS: tuple[str, ...] = (*FRAME_STREAMS, RECORDING_STATS)
#: window statistics per frame-stream channel (mean, standard deviation, mean motion)
STATISTICS = 3
DEFAULT_STREAMS: tuple[str, ...] = ("joint",)
#: numbers per joint and stream: two coordinates and a flag
CHANNELS = 3


def check_streams(
    streams: Sequence[str], layout: Layout | None = None, *, what: str = "data: streams"
) -> list[str]:
    """``streams`` as a list, or a :class:`ConfigError` for an empty list, an unknown or
    repeated name, no frame stream, ``recording_stats`` not last, or a bone stream on a
    layout without a tree."""
    if isinstance(streams, str):
        streams = [streams]
    streams = list(streams)
    unknown = [s for s in streams if s not in STREAMS]
    if not streams or unknown or len(set(streams)) != len(streams):
        raise ConfigError(
            f"{what}={streams}; expected a non-empty list without repeats of {list(STREAMS)}"
        )
    if not any(s in FRAME_STREAMS for s in streams):
        raise ConfigError(
            f"{what}={streams}; {RECORDING_STATS} summarises frame streams: "
            f"list at least one of {list(FRAME_STREAMS)} before it"
        )
    if RECORDING_STATS in streams[:-1]:
        raise ConfigError(f"{what}={streams}; {RECORDING_STATS} must be the last stream")
    if layout is not None and any(s.startswith("bone") for s in streams):
        try:
            layout.bone_parents()
        except ValueError as err:
            raise ConfigError(f"{what}={streams}: {err}") from None
    return streams


def frame_features(layout: Layout, streams: Sequence[str] = DEFAULT_STREAMS) -> int:
    """Channels of the frame streams: ``J * 3`` for each frame stream listed."""
    return sum(s in FRAME_STREAMS for s in streams) * layout.num_joints * CHANNELS


def num_features(layout: Layout, streams: Sequence[str] = DEFAULT_STREAMS) -> int:
    """Features per frame: ``F = frame_features`` (``J * 3`` per frame stream), plus
    ``3 * F`` with ``recording_stats``."""
    frames = frame_features(layout, streams)
    return frames * (1 + STATISTICS * (RECORDING_STATS in streams))


def describe_features(streams: Sequence[str]) -> str:
    """The ``features`` entry of a data description."""
    if list(streams) == list(DEFAULT_STREAMS):
        return "x,y,visible per joint"  # as before streams existed
    return "x,y,flag per joint for each stream: " + ", ".join(streams)


def bones(joints: np.ndarray, layout: Layout) -> np.ndarray:
    """Bones (..., T, J, 3) of normalised joints (..., T, J, 3): child minus parent,
    flag = both visible; the root's bone is zero with the root's visibility."""
    parents = layout.bone_parents()
    flag = joints[..., 2] * joints[..., parents, 2]
    out = np.empty_like(joints)
    out[..., :2] = (joints[..., :2] - joints[..., parents, :2]) * flag[..., None]
    out[..., 2] = flag
    return out


def motion(values: np.ndarray) -> np.ndarray:
    """Frame-to-frame difference (..., T, J, 3) of a stream (..., T, J, 3) along T:
    ``v[t] - v[t-1]`` where both frames are flagged, else 0 with flag 0; the first
    frame is 0."""
    out = np.zeros_like(values)
    flag = values[..., 1:, :, 2] * values[..., :-1, :, 2]
    out[..., 1:, :, :2] = (values[..., 1:, :, :2] - values[..., :-1, :, :2]) * flag[..., None]
    out[..., 1:, :, 2] = flag
    return out


def stream_features(
    joints: np.ndarray, layout: Layout, streams: Sequence[str] = DEFAULT_STREAMS
) -> np.ndarray:
    """Normalised joints (..., T, J, 3) -> the frame streams (..., T, F), concatenated
    in the order given (module docstring). ``recording_stats`` is not among them: it
    needs the whole recording (:func:`with_recording_stats`)."""
    joints = np.asarray(joints, dtype=np.float32)
    parts: dict[str, np.ndarray] = {"joint": joints}
    if "bone" in streams or "bone_motion" in streams:
        parts["bone"] = bones(joints, layout)
    if "joint_motion" in streams:
        parts["joint_motion"] = motion(joints)
    if "bone_motion" in streams:
        parts["bone_motion"] = motion(parts["bone"])
    lead = joints.shape[:-2]
    chosen = [parts[s].reshape(*lead, -1) for s in streams if s in FRAME_STREAMS]
    return chosen[0] if len(chosen) == 1 else np.concatenate(chosen, axis=-1)


def with_recording_stats(frames: np.ndarray, stats: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A window's frame streams (T, F) with its recording's statistics (3F,) appended
    to every real frame (``mask``; a masked frame stays all zeros): (T, 4F)."""
    stats = np.asarray(stats, dtype=frames.dtype)
    context = np.where(np.asarray(mask, bool)[:, None], stats[None, :], 0).astype(frames.dtype)
    return np.concatenate([frames, context], axis=-1)
