"""Joint layouts as data: names, skeleton edges and the joints used for normalisation.

A layout is a named, ordered list of joints. Everything that needs to know where the
hips or shoulders are asks the layout, so new layouts (e.g. from another pose
backend) are added here as data, not as code paths. Conversions between layouts are
tables of joint names (see :func:`conversion_table`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Layout:
    """An ordered set of named joints.

    Attributes:
        name: identifier stored in keypoint files (``layout`` key), e.g. ``"coco17"``.
        joints: joint names in array order.
        edges: skeleton edges as pairs of joint indices (for drawing and graphs).
        left_hip, right_hip, left_shoulder, right_shoulder: joint names used to centre
            and scale a skeleton; ``None`` where the layout lacks them.
        flip_pairs: pairs of joint indices that swap under a left/right mirror.
        parents: for each joint, the index of its parent on the skeleton tree used for
            bones (child minus parent, :mod:`.streams`); the root is its own parent.
            Empty where the layout defines no tree (the bone streams then refuse it).
    """

    name: str
    joints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...] = ()
    left_hip: str | None = None
    right_hip: str | None = None
    left_shoulder: str | None = None
    right_shoulder: str | None = None
    flip_pairs: tuple[tuple[int, int], ...] = field(default=())
    parents: tuple[int, ...] = ()

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        """Array index of ``joint``; a ``KeyError`` naming the layout if it is absent."""
        try:
            return self.joints.index(joint)
        except ValueError:
            raise KeyError(f"layout {self.name!r} has no joint {joint!r}") from None

    def hip_indices(self) -> tuple[int, int] | None:
        if self.left_hip is None or self.right_hip is None:
            return None
        return self.index(self.left_hip), self.index(self.right_hip)

    def shoulder_indices(self) -> tuple[int, int] | None:
        if self.left_shoulder is None or self.right_shoulder is None:
            return None
        return self.index(self.left_shoulder), self.index(self.right_shoulder)

    def bone_parents(self) -> np.ndarray:
        """(J,) int64 parent index of every joint (the root's is itself); a ``ValueError``
        naming the layout if it defines no tree."""
        if not self.parents:
            raise ValueError(
                f"layout {self.name!r} defines no parent per joint (Layout.parents); bones need them"
            )
        return np.asarray(self.parents, dtype=np.int64)


def _edges(joints: tuple[str, ...], pairs: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    return tuple((joints.index(a), joints.index(b)) for a, b in pairs)


def _parents(joints: tuple[str, ...], root: str, parent_of: dict[str, str]) -> tuple[int, ...]:
    """Parent indices from ``{child: parent}`` names; ``root`` is its own parent. Every
    joint but the root needs a parent and every joint must lead to the root."""
    missing = [j for j in joints if j != root and j not in parent_of]
    if missing or root not in joints:
        raise ValueError(f"skeleton tree: root {root!r}, joints without a parent: {missing}")
    parents = tuple(joints.index(root) if j == root else joints.index(parent_of[j]) for j in joints)
    for j in range(len(joints)):
        seen, k = set(), j
        while parents[k] != k:
            if k in seen:
                raise ValueError(
                    f"skeleton tree: joint {joints[j]!r} does not lead to the root {root!r}"
                )
            seen.add(k)
            k = parents[k]
    return parents


def _flip_pairs(joints: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    pairs = []
    for i, name in enumerate(joints):
        if name.startswith("left_"):
            other = "right_" + name[len("left_") :]
            if other in joints:
                pairs.append((i, joints.index(other)))
    return tuple(pairs)


_COCO17_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

COCO17 = Layout(
    name="coco17",
    joints=_COCO17_JOINTS,
    edges=_edges(
        _COCO17_JOINTS,
        [
            ("nose", "left_eye"),
            ("nose", "right_eye"),
            ("left_eye", "left_ear"),
            ("right_eye", "right_ear"),
            ("left_shoulder", "right_shoulder"),
            ("left_shoulder", "left_elbow"),
            ("left_elbow", "left_wrist"),
            ("right_shoulder", "right_elbow"),
            ("right_elbow", "right_wrist"),
            ("left_shoulder", "left_hip"),
            ("right_shoulder", "right_hip"),
            ("left_hip", "right_hip"),
            ("left_hip", "left_knee"),
            ("left_knee", "left_ankle"),
            ("right_hip", "right_knee"),
            ("right_knee", "right_ankle"),
        ],
    ),  # fmt: skip
    left_hip="left_hip",
    right_hip="right_hip",
    left_shoulder="left_shoulder",
    right_shoulder="right_shoulder",
    flip_pairs=_flip_pairs(_COCO17_JOINTS),
    # the tree of skeleton action recognition for COCO (PySKL's JointToBone): root nose
    parents=_parents(
        _COCO17_JOINTS,
        "nose",
        {
            "left_eye": "nose",
            "right_eye": "nose",
            "left_ear": "left_eye",
            "right_ear": "right_eye",
            "left_shoulder": "nose",
            "right_shoulder": "nose",
            "left_elbow": "left_shoulder",
            "right_elbow": "right_shoulder",
            "left_wrist": "left_elbow",
            "right_wrist": "right_elbow",
            "left_hip": "nose",
            "right_hip": "nose",
            "left_knee": "left_hip",
            "right_knee": "right_hip",
            "left_ankle": "left_knee",
            "right_ankle": "right_knee",
        },
    ),  # fmt: skip
)

_OPENPOSE18_JOINTS = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee",
    "right_ankle", "left_hip", "left_knee", "left_ankle", "right_eye",
    "left_eye", "right_ear", "left_ear",
)  # fmt: skip

#: OpenPose's COCO-18 model (COCO-17 plus the neck, in OpenPose's order).
OPENPOSE18 = Layout(
    name="openpose18",
    joints=_OPENPOSE18_JOINTS,
    edges=_edges(
        _OPENPOSE18_JOINTS,
        [
            ("neck", "nose"),
            ("nose", "right_eye"),
            ("right_eye", "right_ear"),
            ("nose", "left_eye"),
            ("left_eye", "left_ear"),
            ("neck", "right_shoulder"),
            ("right_shoulder", "right_elbow"),
            ("right_elbow", "right_wrist"),
            ("neck", "left_shoulder"),
            ("left_shoulder", "left_elbow"),
            ("left_elbow", "left_wrist"),
            ("neck", "right_hip"),
            ("right_hip", "right_knee"),
            ("right_knee", "right_ankle"),
            ("neck", "left_hip"),
            ("left_hip", "left_knee"),
            ("left_knee", "left_ankle"),
        ],
    ),  # fmt: skip
    left_hip="left_hip",
    right_hip="right_hip",
    left_shoulder="left_shoulder",
    right_shoulder="right_shoulder",
    flip_pairs=_flip_pairs(_OPENPOSE18_JOINTS),
    # PySKL's 'openpose' tree: root nose, the body hangs from the neck
    parents=_parents(
        _OPENPOSE18_JOINTS,
        "nose",
        {
            "neck": "nose",
            "right_shoulder": "neck",
            "right_elbow": "right_shoulder",
            "right_wrist": "right_elbow",
            "left_shoulder": "neck",
            "left_elbow": "left_shoulder",
            "left_wrist": "left_elbow",
            "right_hip": "right_shoulder",
            "right_knee": "right_hip",
            "right_ankle": "right_knee",
            "left_hip": "left_shoulder",
            "left_knee": "left_hip",
            "left_ankle": "left_knee",
            "right_eye": "nose",
            "left_eye": "nose",
            "right_ear": "right_eye",
            "left_ear": "left_eye",
        },
    ),  # fmt: skip
)

_BLAZEPOSE33_JOINTS = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner",
    "right_eye", "right_eye_outer", "left_ear", "right_ear", "mouth_left",
    "mouth_right", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index",
    "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip

#: MediaPipe's BlazePose: 33 landmarks.
BLAZEPOSE33 = Layout(
    name="blazepose33",
    joints=_BLAZEPOSE33_JOINTS,
    edges=_edges(
        _BLAZEPOSE33_JOINTS,
        [
            ("left_shoulder", "right_shoulder"),
            ("left_shoulder", "left_elbow"),
            ("left_elbow", "left_wrist"),
            ("right_shoulder", "right_elbow"),
            ("right_elbow", "right_wrist"),
            ("left_shoulder", "left_hip"),
            ("right_shoulder", "right_hip"),
            ("left_hip", "right_hip"),
            ("left_hip", "left_knee"),
            ("left_knee", "left_ankle"),
            ("left_ankle", "left_heel"),
            ("left_heel", "left_foot_index"),
            ("right_hip", "right_knee"),
            ("right_knee", "right_ankle"),
            ("right_ankle", "right_heel"),
            ("right_heel", "right_foot_index"),
            ("nose", "left_eye"),
            ("nose", "right_eye"),
            ("left_eye", "left_ear"),
            ("right_eye", "right_ear"),
        ],
    ),  # fmt: skip
    left_hip="left_hip",
    right_hip="right_hip",
    left_shoulder="left_shoulder",
    right_shoulder="right_shoulder",
    flip_pairs=_flip_pairs(_BLAZEPOSE33_JOINTS),
    # COCO's tree (root nose) for the COCO joints; face, hand and foot points hang from
    # their neighbours on MediaPipe's connections
    parents=_parents(
        _BLAZEPOSE33_JOINTS,
        "nose",
        {
            "left_eye_inner": "nose",
            "left_eye": "left_eye_inner",
            "left_eye_outer": "left_eye",
            "right_eye_inner": "nose",
            "right_eye": "right_eye_inner",
            "right_eye_outer": "right_eye",
            "left_ear": "left_eye_outer",
            "right_ear": "right_eye_outer",
            "mouth_left": "nose",
            "mouth_right": "nose",
            "left_shoulder": "nose",
            "right_shoulder": "nose",
            "left_elbow": "left_shoulder",
            "right_elbow": "right_shoulder",
            "left_wrist": "left_elbow",
            "right_wrist": "right_elbow",
            "left_pinky": "left_wrist",
            "right_pinky": "right_wrist",
            "left_index": "left_wrist",
            "right_index": "right_wrist",
            "left_thumb": "left_wrist",
            "right_thumb": "right_wrist",
            "left_hip": "nose",
            "right_hip": "nose",
            "left_knee": "left_hip",
            "right_knee": "right_hip",
            "left_ankle": "left_knee",
            "right_ankle": "right_knee",
            "left_heel": "left_ankle",
            "right_heel": "right_ankle",
            "left_foot_index": "left_heel",
            "right_foot_index": "right_heel",
        },
    ),  # fmt: skip
)

_BODY25_JOINTS = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist", "mid_hip", "right_hip",
    "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe",
    "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)  # fmt: skip

#: OpenPose's BODY_25 model (its default): COCO-18 plus the mid-hip and six foot points.
OPENPOSE_BODY25 = Layout(
    name="openpose_body25",
    joints=_BODY25_JOINTS,
    edges=_edges(
        _BODY25_JOINTS,
        [
            ("neck", "nose"),
            ("nose", "right_eye"),
            ("right_eye", "right_ear"),
            ("nose", "left_eye"),
            ("left_eye", "left_ear"),
            ("neck", "right_shoulder"),
            ("right_shoulder", "right_elbow"),
            ("right_elbow", "right_wrist"),
            ("neck", "left_shoulder"),
            ("left_shoulder", "left_elbow"),
            ("left_elbow", "left_wrist"),
            ("neck", "mid_hip"),
            ("mid_hip", "right_hip"),
            ("mid_hip", "left_hip"),
            ("right_hip", "right_knee"),
            ("right_knee", "right_ankle"),
            ("left_hip", "left_knee"),
            ("left_knee", "left_ankle"),
            ("left_ankle", "left_heel"),
            ("left_ankle", "left_big_toe"),
            ("left_big_toe", "left_small_toe"),
            ("right_ankle", "right_heel"),
            ("right_ankle", "right_big_toe"),
            ("right_big_toe", "right_small_toe"),
        ],
    ),  # fmt: skip
    left_hip="left_hip",
    right_hip="right_hip",
    left_shoulder="left_shoulder",
    right_shoulder="right_shoulder",
    flip_pairs=_flip_pairs(_BODY25_JOINTS),
    # OpenPose's own limbs as a tree: root nose, the legs hang from the mid-hip
    parents=_parents(
        _BODY25_JOINTS,
        "nose",
        {
            "neck": "nose",
            "right_shoulder": "neck",
            "right_elbow": "right_shoulder",
            "right_wrist": "right_elbow",
            "left_shoulder": "neck",
            "left_elbow": "left_shoulder",
            "left_wrist": "left_elbow",
            "mid_hip": "neck",
            "right_hip": "mid_hip",
            "right_knee": "right_hip",
            "right_ankle": "right_knee",
            "left_hip": "mid_hip",
            "left_knee": "left_hip",
            "left_ankle": "left_knee",
            "right_eye": "nose",
            "left_eye": "nose",
            "right_ear": "right_eye",
            "left_ear": "left_eye",
            "left_big_toe": "left_ankle",
            "left_small_toe": "left_big_toe",
            "left_heel": "left_ankle",
            "right_big_toe": "right_ankle",
            "right_small_toe": "right_big_toe",
            "right_heel": "right_ankle",
        },
    ),  # fmt: skip
)

_EMOPAIN22_JOINTS = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "spine", "chest",
    "right_collar", "right_shoulder", "right_elbow", "right_wrist", "right_hand",
    "left_collar", "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "neck", "head", "head_top",
)  # fmt: skip

#: The 22-joint 3D motion-capture graph of EmoPain (lbp_motion.datamodules.emopain: its
#: ``JOINT_NAMES`` and ``JOINT_EDGES`` are these; the challenge does not publish names,
#: the sides are an assumption). Not a keypoint-file layout (not in :data:`LAYOUTS`);
#: its ``flip_pairs`` are what the augmentation's mirror swaps.
EMOPAIN22 = Layout(
    name="emopain22",
    joints=_EMOPAIN22_JOINTS,
    edges=(
        (0, 1),
        (0, 4),
        (0, 7),
        (1, 2),
        (2, 3),
        (4, 5),
        (5, 6),
        (7, 8),
        (8, 9),
        (8, 14),
        (8, 19),
        (9, 10),
        (10, 11),
        (11, 12),
        (12, 13),
        (14, 15),
        (15, 16),
        (16, 17),
        (17, 18),
        (19, 20),
        (20, 21),
    ),  # fmt: skip
    left_hip="left_hip",
    right_hip="right_hip",
    left_shoulder="left_shoulder",
    right_shoulder="right_shoulder",
    flip_pairs=_flip_pairs(_EMOPAIN22_JOINTS),
)

LAYOUTS: dict[str, Layout] = {
    layout.name: layout for layout in (COCO17, OPENPOSE18, BLAZEPOSE33, OPENPOSE_BODY25)
}


def register_layout(layout: Layout) -> Layout:
    """Add a layout so that files naming it can be read; returns it."""
    LAYOUTS[layout.name] = layout
    return layout


def get_layout(name: str) -> Layout:
    """The layout called ``name``; a ``ValueError`` listing the known ones otherwise."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(
            f"unknown joint layout {name!r}; known layouts: {sorted(LAYOUTS)}"
        ) from None


def conversion_table(
    source: Layout, target: Layout, mapping: dict[str, str] | None = None
) -> np.ndarray:
    """For each target joint, the index of the source joint that provides it (or -1).

    ``mapping`` maps target joint names to source joint names where they differ; by
    default joints are matched by name.
    """
    mapping = mapping or {}
    table = np.full(target.num_joints, -1, dtype=np.int64)
    for t, name in enumerate(target.joints):
        src = mapping.get(name, name)
        if src in source.joints:
            table[t] = source.joints.index(src)
    return table


def to_layout(keypoints: np.ndarray, source: str, target: str = "coco17") -> np.ndarray:
    """Convert ``keypoints (T, J_src, C)`` from layout ``source`` to ``target`` by joint
    name (e.g. openpose18 or blazepose33 -> coco17); target joints the source lacks are
    missing (zeros)."""
    if source == target:
        return keypoints
    return convert(keypoints, conversion_table(get_layout(source), get_layout(target)))


def convert(keypoints: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Apply a :func:`conversion_table`: ``keypoints (T, J_src, C) -> (T, J_tgt, C)``.

    Target joints without a source are zeros (confidence 0, i.e. missing).
    """
    out = np.zeros(keypoints.shape[:-2] + (len(table), keypoints.shape[-1]), dtype=keypoints.dtype)
    present = table >= 0
    out[..., present, :] = keypoints[..., table[present], :]
    return out


#: Conversion tables as data: ``(source, target) -> {target joint: source joint}``, one
#: entry per target joint the source provides (target joints not listed are written as
#: missing). :func:`layout_conversion` reads them; add an entry for another pair.
CONVERSIONS: dict[tuple[str, str], dict[str, str]] = {
    # BlazePose's 33 landmarks hold all 17 COCO joints (its extra face, hand and foot
    # points are dropped).
    ("blazepose33", "coco17"): {
        "nose": "nose",
        "left_eye": "left_eye", "right_eye": "right_eye",
        "left_ear": "left_ear", "right_ear": "right_ear",
        "left_shoulder": "left_shoulder", "right_shoulder": "right_shoulder",
        "left_elbow": "left_elbow", "right_elbow": "right_elbow",
        "left_wrist": "left_wrist", "right_wrist": "right_wrist",
        "left_hip": "left_hip", "right_hip": "right_hip",
        "left_knee": "left_knee", "right_knee": "right_knee",
        "left_ankle": "left_ankle", "right_ankle": "right_ankle",
    },
    # OpenPose COCO-18 is COCO-17 in another order plus a neck (dropped).
    ("openpose18", "coco17"): {name: name for name in _COCO17_JOINTS},
}  # fmt: skip


def layout_conversion(source: str, target: str) -> np.ndarray:
    """The conversion table (as :func:`conversion_table` gives) from layout ``source``
    to ``target`` in :data:`CONVERSIONS`; the identity when they are equal; for other
    pairs, matching by joint name (:func:`to_layout`'s rule)."""
    src, tgt = get_layout(source), get_layout(target)
    if source == target:
        return np.arange(src.num_joints, dtype=np.int64)
    mapping = CONVERSIONS.get((source, target))
    if mapping is None:
        return conversion_table(src, tgt)
    table = conversion_table(src, tgt, mapping)
    table[[name not in mapping for name in tgt.joints]] = -1
    return table


def convert_layout(keypoints: np.ndarray, source: str, target: str) -> np.ndarray:
    """``keypoints (..., J_source, C)`` in layout ``source`` -> layout ``target`` with
    :func:`layout_conversion`."""
    return convert(keypoints, layout_conversion(source, target))
