"""Per-frame features of EmoPain recordings (PLAAN): joint coordinates, joint angles,
joint energies and sEMG, and their names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from lbp_motion.datasets.emopain.format import (
    ANGLE_TRIPLETS,
    EMG_CHANNELS,
    NUM_JOINTS,
    EmoPainRecording,
)
from lbp_motion.errors import ConfigError

# --------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------


def compute_joint_angles(
    coords: np.ndarray, triplets: Sequence[tuple[int, int, int]] = ANGLE_TRIPLETS
) -> np.ndarray:
    """Angles (T, A) float32 in radians, in [0, pi]: for each ``(a, j, b)`` the angle at
    joint ``j`` between the bones to ``a`` and ``b``, from (T, J, 3) coordinates. A bone
    of length 0 gives angle pi/2."""
    coords = np.asarray(coords, dtype=np.float64)
    idx = np.asarray(triplets, dtype=np.int64).reshape(-1, 3)
    u = coords[:, idx[:, 0]] - coords[:, idx[:, 1]]
    v = coords[:, idx[:, 2]] - coords[:, idx[:, 1]]
    nu = np.linalg.norm(u, axis=-1)
    nv = np.linalg.norm(v, axis=-1)
    cos = np.sum(u * v, axis=-1) / np.maximum(nu * nv, 1e-12)
    return np.arccos(np.clip(cos, -1.0, 1.0)).astype(np.float32)


def compute_joint_energies(coords: np.ndarray, fps: float) -> np.ndarray:
    """Kinetic-energy proxy (T, J) float32 per joint: squared speed |dp/dt|^2 in (file
    units / s)^2 (unit mass), by central differences (one-sided at the ends)."""
    coords = np.asarray(coords, dtype=np.float64)
    if coords.shape[0] < 2:
        return np.zeros(coords.shape[:2], dtype=np.float32)
    vel = np.gradient(coords, axis=0) * fps
    return np.sum(vel * vel, axis=-1).astype(np.float32)


FeatureSet = Literal["coords", "emg", "both"]


def feature_names(
    features: str = "both", joint_angles: bool = False, joint_energies: bool = False
) -> list[str]:
    """Names of the per-frame features in ``x`` order: ``j<k>_x/y/z`` (joint-major), then
    ``emg_<channel>``, then ``angle_<a>_<j>_<b>``, then ``energy_j<k>``."""
    if features not in ("coords", "emg", "both"):
        raise ConfigError(f"data: features={features!r}; expected 'coords', 'emg' or 'both'")
    names: list[str] = []
    if features in ("coords", "both"):
        names += [f"j{j}_{a}" for j in range(NUM_JOINTS) for a in "xyz"]
    if features in ("emg", "both"):
        names += [f"emg_{c}" for c in EMG_CHANNELS]
    if joint_angles:
        names += [f"angle_{a}_{j}_{b}" for a, j, b in ANGLE_TRIPLETS]
    if joint_energies:
        names += [f"energy_j{j}" for j in range(NUM_JOINTS)]
    return names


def frame_features(
    rec: EmoPainRecording,
    features: str = "both",
    joint_angles: bool = False,
    joint_energies: bool = False,
    fps: float = 60.0,
) -> np.ndarray:
    """Unstandardised per-frame features (T, F) float32 of a recording, in the order of
    :func:`feature_names`. Derived features use the whole recording (an instance's
    frames are contiguous in it)."""
    parts = []
    if features in ("coords", "both"):
        parts.append(rec.coords.reshape(rec.num_frames, -1))
    if features in ("emg", "both"):
        parts.append(rec.emg)
    if joint_angles:
        parts.append(compute_joint_angles(rec.coords))
    if joint_energies:
        parts.append(compute_joint_energies(rec.coords, fps))
    return np.concatenate(parts, axis=1).astype(np.float32)
