"""KERAAL importers and layout conversions, on the real KERAAL samples in ../shared/data."""

import json

import numpy as np
import pytest

from lbp_motion.data.format import DataFormatError, write_recording
from lbp_motion.data.layouts import COCO17, get_layout, to_layout
from lbp_motion.pose import read_keraal_json
from tests.conftest import SHARED_DATA

KERAAL = SHARED_DATA / "keraal"
needs_keraal = pytest.mark.skipif(not KERAAL.is_dir(), reason=f"KERAAL samples not found at {KERAAL} (../shared/data)")


@needs_keraal
def test_alphapose_file_reads_as_coco17_with_the_missing_frame_kept():
    rec = read_keraal_json(KERAAL / "G3-AP-CTK-P1T1-Unknown-C-0.json")
    assert rec.layout == "coco17" and rec.keypoints.shape == (196, 17, 3) and rec.image_size == (960, 544)
    assert (rec.keypoints[12] == 0).all()  # frame "12" is absent: a zero-confidence row
    assert (rec.keypoints[11, :, 2] == 1).all()
    raw = json.loads((KERAAL / "G3-AP-CTK-P1T1-Unknown-C-0.json").read_text())["positions"]["0"]["11"]
    np.testing.assert_allclose(rec.keypoints[0, 11, :2], [raw[0] * 960, raw[1] * 544], rtol=1e-6)


@needs_keraal
def test_openpose_and_blazepose_files_read_in_their_layouts():
    op = read_keraal_json(KERAAL / "G3-OP-CTK-P1T1-Unknown-C-0.json")
    bp = read_keraal_json(KERAAL / "G3-BP-CTK-P1T1-Unknown-C-0.json")
    assert op.layout == "openpose18" and op.keypoints.shape == (197, 18, 3)
    assert bp.layout == "blazepose33" and bp.keypoints.shape == (196, 33, 3)
    # OpenPose leaves undetected joints out: present joints are exactly those listed
    raw = json.loads((KERAAL / "G3-OP-CTK-P1T1-Unknown-C-0.json").read_text())["positions"]
    listed = np.array([len(raw[f"{t + 1}.0"]) for t in range(197)])
    np.testing.assert_array_equal(op.keypoints[..., 2].sum(axis=1), listed)
    assert (listed < 18).any()
    assert op.meta["first_frame_key"] == 1  # 1-based keys, read as frame 0


@needs_keraal
def test_alphapose_and_openpose_tracks_agree_after_conversion():
    """The same trial seen by two estimators: hips and shoulders match closely."""
    ap = read_keraal_json(KERAAL / "G3-AP-CTK-P1T1-Unknown-C-0.json").keypoints
    op = to_layout(read_keraal_json(KERAAL / "G3-OP-CTK-P1T1-Unknown-C-0.json").keypoints, "openpose18", "coco17")
    joints = [COCO17.index(n) for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder")]
    diagonal = float(np.hypot(960, 544))

    def median_error(lag: int) -> float:
        a = ap[max(0, -lag):][: len(op) - max(0, lag)]
        b = op[max(0, lag):][: len(a)]
        ok = (a[:, joints, 2] > 0) & (b[:, joints, 2] > 0)
        return float(np.median(np.linalg.norm(a[:, joints, :2] - b[:, joints, :2], axis=-1)[ok])) / diagonal

    errors = {lag: median_error(lag) for lag in range(-3, 4)}
    best = min(errors, key=errors.get)
    assert errors[best] < 0.02, errors  # within 2% of the image diagonal
    assert abs(best) <= 1  # 0-based AP frame t is the 1-based OP frame t + 1
    # and left/right agree: swapping them makes it much worse
    swapped = op[:, [COCO17.index(n) for n in ("right_hip", "left_hip", "right_shoulder", "left_shoulder")]]
    n = min(len(ap), len(swapped))
    sw = np.median(np.linalg.norm(ap[:n, joints, :2] - swapped[:n, :, :2], axis=-1)) / diagonal
    assert sw > 2 * errors[best]


@needs_keraal
def test_imported_keraal_writes_a_valid_keypoint_file(tmp_path):
    from lbp_motion.data.format import read_recording

    bp = read_keraal_json(KERAAL / "G3-BP-CTK-P1T1-Unknown-C-0.json")
    coco = to_layout(bp.keypoints, "blazepose33", "coco17")
    write_recording(tmp_path / "bp.npz", coco, layout="coco17", fps=bp.fps, image_size=bp.image_size, source="keraal-bp")
    back = read_recording(tmp_path / "bp.npz")
    assert back.keypoints.shape == (196, 17, 3) and back.meta["source"] == "keraal-bp"
    np.testing.assert_array_equal(back.keypoints[:, 0], bp.keypoints[:, 0])  # nose is landmark 0 in both


def test_conversion_tables_move_joints_by_name():
    op = np.zeros((1, 18, 3), np.float32)
    layout = get_layout("openpose18")
    op[0, layout.index("left_knee")] = (10, 20, 1)
    op[0, layout.index("neck")] = (5, 5, 1)
    coco = to_layout(op, "openpose18", "coco17")
    assert coco.shape == (1, 17, 3)
    np.testing.assert_array_equal(coco[0, COCO17.index("left_knee")], [10, 20, 1])
    assert coco[0, :, 2].sum() == 1  # the neck has no COCO-17 place


def test_bad_keraal_files_are_named(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"frames": {}}))
    with pytest.raises(DataFormatError, match="bad.json: not a KERAAL pose file"):
        read_keraal_json(bad)
    bad.write_text(json.dumps({"positions": {"1.0": {"Tail": [0.1, 0.2]}}}))
    with pytest.raises(DataFormatError, match="bad.json: joint keys"):
        read_keraal_json(bad)
