"""Conversion tables to COCO-17 as data."""

import numpy as np
import pytest

from lbp_motion.datasets.layouts import (
    COCO17,
    CONVERSIONS,
    convert_layout,
    get_layout,
    layout_conversion,
    to_layout,
)


def test_blazepose_and_openpose_tables_to_coco17():
    # COCO-17 order: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles
    assert layout_conversion("blazepose33", "coco17").tolist() == [
        0,
        2,
        5,
        7,
        8,
        11,
        12,
        13,
        14,
        15,
        16,
        23,
        24,
        25,
        26,
        27,
        28,
    ]
    assert layout_conversion("openpose18", "coco17").tolist() == [
        0,
        15,
        14,
        17,
        16,
        5,
        2,
        6,
        3,
        7,
        4,
        11,
        8,
        12,
        9,
        13,
        10,
    ]
    for (src, tgt), mapping in CONVERSIONS.items():
        table = layout_conversion(src, tgt)
        for t, name in enumerate(get_layout(tgt).joints):
            assert get_layout(src).joints[table[t]] == mapping[name]


def test_convert_layout_moves_every_joint_and_agrees_with_to_layout():
    blaze = np.random.default_rng(0).random((4, 33, 3)).astype(np.float32)
    coco = convert_layout(blaze, "blazepose33", "coco17")
    assert coco.shape == (4, 17, 3)
    lay = get_layout("blazepose33")
    for j, name in enumerate(COCO17.joints):
        np.testing.assert_array_equal(coco[:, j], blaze[:, lay.index(name)])
    np.testing.assert_array_equal(coco, to_layout(blaze, "blazepose33", "coco17"))
    np.testing.assert_array_equal(convert_layout(coco, "coco17", "coco17"), coco)


def test_pairs_without_a_table_go_by_name_and_missing_joints_are_zero():
    coco = np.ones((2, 17, 3), np.float32)
    op = convert_layout(coco, "coco17", "openpose18")
    assert (op[:, get_layout("openpose18").index("neck")] == 0).all() and op[..., 2].sum() == 2 * 17
    with pytest.raises(ValueError, match="unknown joint layout"):
        layout_conversion("coco17", "nope")


def test_openpose_body25_is_a_layout_with_a_drawable_skeleton():
    # BODY_25: COCO-18's order with mid_hip inserted at 8 and six foot points at the end
    lay = get_layout("openpose_body25")
    assert lay.num_joints == 25 and lay.hip_indices() == (12, 9)
    assert layout_conversion("openpose_body25", "coco17").tolist() == [
        0,
        16,
        15,
        18,
        17,
        5,
        2,
        6,
        3,
        7,
        4,
        12,
        9,
        13,
        10,
        14,
        11,
    ]
    assert (
        all(0 <= a < 25 and 0 <= b < 25 and a != b for a, b in lay.edges) and len(lay.edges) == 24
    )
    assert (lay.index("left_heel"), lay.index("right_heel")) in lay.flip_pairs
