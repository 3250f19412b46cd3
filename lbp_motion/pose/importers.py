"""Importers for keypoints made elsewhere, into the keypoint format of docs/data-format.md.

KERAAL JSON (the KERAAL low-back-pain rehabilitation dataset's pose files) holds
``{"positions": {frame: {joint: [x, y(, z)]}}}`` with coordinates normalised to [0, 1]
of the image and no confidences. Three flavours, told apart by their joint keys:

* AlphaPose: joint keys "0".."16" in COCO-17 order; frame keys 0-based ("0", "1", ...);
* OpenPose: joint names "Nose", "Neck", "rShoulder", ... (COCO-18); frame keys 1-based
  floats ("1.0", "2.0", ...); undetected joints are left out;
* BlazePose (MediaPipe): 33 names "Nose", "Left_eye_inner", ...; frame keys 1-based
  floats; the third value (z) is dropped.

The importer turns frame keys into 0-based frame numbers (1-based keys minus one), so
frame t of every flavour is the video's t-th frame; a frame missing from the file
becomes a row of zeros (confidence 0) so timing survives. Coordinates are scaled to
pixels with the image size; present joints get confidence 1, absent ones 0.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..data.format import DataFormatError, Recording, validate_keypoints
from ..data.layouts import get_layout

KERAAL_IMAGE_SIZE = (960, 544)  # KERAAL group 3 videos


def _snake(name: str) -> str:
    """KERAAL joint names to layout names: 'rShoulder' -> 'right_shoulder',
    'Left_eye_inner' -> 'left_eye_inner', 'Nose' -> 'nose'."""
    m = re.fullmatch(r"([rl])([A-Z]\w*)", name)
    if m:
        side = "right" if m.group(1) == "r" else "left"
        return f"{side}_{m.group(2).lower()}"
    return name.lower()


def _flavour(joint_keys: set[str]) -> str:
    if joint_keys and all(k.isdigit() for k in joint_keys):
        return "coco17"
    names = {_snake(k) for k in joint_keys}
    if names & {"left_eye_inner", "mouth_left", "left_heel"}:
        return "blazepose33"
    if "neck" in names or names <= set(get_layout("openpose18").joints):
        return "openpose18"
    raise DataFormatError(f"joint keys {sorted(joint_keys)[:5]}... match no KERAAL flavour")


def read_keraal_json(
    path: str | Path, *, image_size: tuple[int, int] = KERAAL_IMAGE_SIZE, fps: float = 30.0
) -> Recording:
    """Read one KERAAL pose file as a :class:`~lbp_motion.data.format.Recording` in its
    own layout (coco17, openpose18 or blazepose33); pixels, confidences 1/0."""
    path = Path(path)
    try:
        positions = json.loads(path.read_text())["positions"]
    except (OSError, ValueError, KeyError) as err:
        raise DataFormatError(f"{path}: not a KERAAL pose file with a 'positions' field ({err})") from None
    if not positions:
        raise DataFormatError(f"{path}: field 'positions' is empty")
    try:
        frames = {int(float(k)): v for k, v in positions.items()}
    except ValueError as err:
        raise DataFormatError(f"{path}: field 'positions' has a frame key that is not a number ({err})") from None
    joint_keys = {j for joints in frames.values() for j in joints}
    try:
        layout = get_layout(_flavour(joint_keys))
    except DataFormatError as err:
        raise DataFormatError(f"{path}: {err}") from None
    first = min(frames)
    if first not in (0, 1):
        raise DataFormatError(f"{path}: field 'positions' starts at frame {first}; expected 0 or 1")
    num_frames = max(frames) - first + 1
    keypoints = np.zeros((num_frames, layout.num_joints, 3), np.float32)
    width, height = image_size
    for key, joints in frames.items():
        t = key - first
        for joint, value in joints.items():
            j = int(joint) if layout.name == "coco17" else layout.index(_snake(joint))
            keypoints[t, j] = (value[0] * width, value[1] * height, 1.0)
    keypoints[..., 0].clip(0, width, out=keypoints[..., 0])
    keypoints[..., 1].clip(0, height, out=keypoints[..., 1])
    validate_keypoints(keypoints, source=str(path), num_joints=layout.num_joints)
    return Recording(path.stem, keypoints, layout.name, fps, (width, height), {"source": "keraal", "first_frame_key": first})
