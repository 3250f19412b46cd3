"""KERAAL importers and layout conversions, on the real KERAAL samples in ../shared/data."""

import json

import numpy as np
import pytest

from lbp_motion.datasets.format import DataFormatError, write_recording
from lbp_motion.datasets.layouts import COCO17, get_layout, to_layout
from lbp_motion.pose import read_keraal_json
from tests.conftest import SHARED_DATA

KERAAL = SHARED_DATA / "keraal"
needs_keraal = pytest.mark.skipif(
    not KERAAL.is_dir(), reason=f"KERAAL samples not found at {KERAAL} (../shared/data)"
)


@needs_keraal
def test_alphapose_file_reads_as_coco17_with_the_missing_frame_kept():
    rec = read_keraal_json(KERAAL / "G3-AP-CTK-P1T1-Unknown-C-0.json")
    assert (
        rec.layout == "coco17"
        and rec.keypoints.shape == (196, 17, 3)
        and rec.image_size == (960, 544)
    )
    assert (rec.keypoints[12] == 0).all()  # frame "12" is absent: a zero-confidence row
    assert (rec.keypoints[11, :, 2] == 1).all()
    raw = json.loads((KERAAL / "G3-AP-CTK-P1T1-Unknown-C-0.json").read_text())["positions"]["0"][
        "11"
    ]
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
    op = to_layout(
        read_keraal_json(KERAAL / "G3-OP-CTK-P1T1-Unknown-C-0.json").keypoints,
        "openpose18",
        "coco17",
    )
    joints = [COCO17.index(n) for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder")]
    diagonal = float(np.hypot(960, 544))

    def median_error(lag: int) -> float:
        a = ap[max(0, -lag) :][: len(op) - max(0, lag)]
        b = op[max(0, lag) :][: len(a)]
        ok = (a[:, joints, 2] > 0) & (b[:, joints, 2] > 0)
        return (
            float(np.median(np.linalg.norm(a[:, joints, :2] - b[:, joints, :2], axis=-1)[ok]))
            / diagonal
        )

    errors = {lag: median_error(lag) for lag in range(-3, 4)}
    best = min(errors, key=errors.get)
    assert errors[best] < 0.02, errors  # within 2% of the image diagonal
    assert abs(best) <= 1  # 0-based AP frame t is the 1-based OP frame t + 1
    # and left/right agree: swapping them makes it much worse
    swapped = op[
        :, [COCO17.index(n) for n in ("right_hip", "left_hip", "right_shoulder", "left_shoulder")]
    ]
    n = min(len(ap), len(swapped))
    sw = np.median(np.linalg.norm(ap[:n, joints, :2] - swapped[:n, :, :2], axis=-1)) / diagonal
    assert sw > 2 * errors[best]


@needs_keraal
def test_imported_keraal_writes_a_valid_keypoint_file(tmp_path):
    from lbp_motion.datasets.format import read_recording

    bp = read_keraal_json(KERAAL / "G3-BP-CTK-P1T1-Unknown-C-0.json")
    coco = to_layout(bp.keypoints, "blazepose33", "coco17")
    write_recording(
        tmp_path / "bp.npz",
        coco,
        layout="coco17",
        fps=bp.fps,
        image_size=bp.image_size,
        source="keraal-bp",
    )
    back = read_recording(tmp_path / "bp.npz")
    assert back.keypoints.shape == (196, 17, 3) and back.meta["source"] == "keraal-bp"
    np.testing.assert_array_equal(
        back.keypoints[:, 0], bp.keypoints[:, 0]
    )  # nose is landmark 0 in both


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


# -- COCO results, OpenPose JSON, the dispatcher -----------------------------------------
def _coco_kp(x, y, score=0.9):
    return [v for j in range(17) for v in (x + j, y + 2 * j, score)]


def test_coco_results_keep_the_main_subject_and_frame_numbers(tmp_path):
    from lbp_motion.pose import read_coco_results

    results = []
    for t in range(0, 12):
        if t == 4:
            continue  # nobody in frame 4
        results.append(
            {
                "image_id": f"{t + 1:06d}.jpg",
                "category_id": 1,
                "keypoints": _coco_kp(100 + 10 * t, 50),
                "score": 0.95,
                "box": [90 + 10 * t, 40, 40, 60],
            }
        )  # AlphaPose style, 1-based names
        results.append(
            {
                "image_id": f"{t + 1:06d}.jpg",
                "category_id": 1,
                "keypoints": _coco_kp(600, 50, 0.5),
                "score": 0.7,
            }
        )  # a bystander standing still
    results.append(
        {"image_id": 1, "category_id": 2, "keypoints": _coco_kp(0, 0), "score": 1.0}
    )  # not a person
    path = tmp_path / "alphapose-results.json"
    path.write_text(json.dumps(results))
    rec = read_coco_results(path, fps=25.0, image_size=(960, 544))
    assert rec.layout == "coco17" and rec.keypoints.shape == (12, 17, 3) and rec.fps == 25.0
    assert (rec.keypoints[4] == 0).all()  # frame 5 of the file (row 4) is a zero row
    np.testing.assert_allclose(rec.keypoints[0, 0], [100, 50, 0.9], rtol=1e-6)
    np.testing.assert_allclose(rec.keypoints[11, 3, :2], [100 + 110 + 3, 50 + 6])
    assert rec.meta["first_frame"] == 1 and rec.meta["num_tracks"] == 2


def test_coco_results_with_logit_scores_are_squashed(tmp_path):
    from lbp_motion.pose import read_coco_results

    path = tmp_path / "d2.json"
    path.write_text(
        json.dumps(
            [{"image_id": t, "keypoints": _coco_kp(10, 10, 3.0), "score": 0.9} for t in range(3)]
        )
    )
    rec = read_coco_results(path)
    assert 0.9 < rec.keypoints[0, 0, 2] < 1.0 and rec.image_size == (
        27,
        43,
    )  # extent of the keypoints


def test_openpose_folder_coco18_and_body25(tmp_path):
    from lbp_motion.pose import read_openpose_json

    for model, n in (("openpose18", 18), ("openpose_body25", 25)):
        folder = tmp_path / model
        folder.mkdir()
        layout = get_layout(model)
        for t in range(5):
            flat = np.zeros((n, 3))
            flat[:, 0], flat[:, 1], flat[:, 2] = 200 + t, 300, 0.8
            flat[layout.index("left_knee")] = (150 + t, 400, 0.7)
            flat[layout.index("right_ankle"), 2] = 0.0  # not detected
            people = (
                [] if t == 2 else [{"person_id": [-1], "pose_keypoints_2d": flat.ravel().tolist()}]
            )
            (folder / f"clip_{t:012d}_keypoints.json").write_text(
                json.dumps({"version": 1.3, "people": people})
            )
        rec = read_openpose_json(folder, fps=30.0, image_size=(640, 480))
        assert rec.layout == "coco17" and rec.keypoints.shape == (5, 17, 3)
        np.testing.assert_allclose(
            rec.keypoints[3, COCO17.index("left_knee")], [153, 400, 0.7], rtol=1e-6
        )
        assert (
            rec.keypoints[0, COCO17.index("right_ankle"), 2] == 0 and (rec.keypoints[2] == 0).all()
        )


def test_import_keypoints_picks_the_reader(tmp_path):
    from lbp_motion.pose import import_keypoints

    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps([{"image_id": 0, "keypoints": _coco_kp(5, 5)}]))
    assert import_keypoints(coco).meta["source"] == "coco-results"
    op = tmp_path / "one_000000000000_keypoints.json"
    op.write_text(json.dumps({"people": [{"pose_keypoints_2d": [10.0, 10.0, 0.9] * 18}]}))
    assert import_keypoints(op).meta["source"] == "openpose-json"
    write_recording(
        tmp_path / "r.npz",
        np.ones((3, 17, 3), np.float32),
        layout="coco17",
        fps=30,
        image_size=(10, 10),
    )
    assert import_keypoints(tmp_path / "r.npz").keypoints.shape == (3, 17, 3)
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(DataFormatError, match="other.json: not a known keypoint file"):
        import_keypoints(tmp_path / "other.json")


@needs_keraal
def test_import_keypoints_reads_keraal_as_coco17():
    from lbp_motion.pose import import_keypoints

    rec = import_keypoints(KERAAL / "G3-BP-CTK-P1T1-Unknown-C-0.json")
    assert (
        rec.layout == "coco17"
        and rec.keypoints.shape == (196, 17, 3)
        and rec.image_size == (960, 544)
    )
