"""EmoPain format (reader, writer, errors), segmentation and voting, and the joint
features (lbp_motion.datasets.emopain). EmoPainDataModule: tests/datamodules/test_emopain.py;
the synthetic generator: tests/datasets/synthetic/test_synthetic_emopain.py."""

from __future__ import annotations

import numpy as np
import pytest

from lbp_motion.datasets.emopain import (
    ANGLE_TRIPLETS,
    JOINT_EDGES,
    NUM_COLUMNS,
    build_emopain_matrix,
    column_meaning,
    compute_joint_angles,
    compute_joint_energies,
    exercise_instances,
    list_emopain_files,
    majority_label,
    parse_emopain_name,
    read_emopain,
    read_emopain_matrix,
    segment_starts,
    write_emopain_csv,
    write_emopain_mat,
)
from lbp_motion.datasets.format import DataFormatError
from lbp_motion.datasets.splits import loso_folds


def labelled_matrix(t: int, *, exercise=7, pain=0, protective=0, seed=0) -> np.ndarray:
    """A valid (t, 78) matrix: random coordinates and sEMG, the given labels."""
    rng = np.random.default_rng(seed)
    coords = rng.normal(size=(t, 22, 3))
    emg = rng.random((t, 4))
    types = np.zeros((t, 5))
    prot = np.broadcast_to(np.asarray(protective), (t,))
    types[:, 0] = prot
    return build_emopain_matrix(
        coords,
        emg,
        np.broadcast_to(np.asarray(exercise), (t,)),
        np.broadcast_to(np.asarray(pain), (t,)),
        prot,
        types,
    )


# -- the format ----------------------------------------------------------------------------


def test_column_mapping_is_blocked_xyz(tmp_path):
    t = 5
    data = np.zeros((t, NUM_COLUMNS))
    data[:, :70] = (
        np.arange(t)[:, None] * 1000 + np.arange(70)[None, :]
    )  # value = 1000 * row + column (0-based)
    data[:, 70] = [0, 3, 8, 1, 2]
    data[:, 71] = [-1, 0, 1, 2, 2]
    data[:, 72] = [0, 1, 1, 0, 1]
    data[:, 73:78] = np.eye(5)
    rec = read_emopain(write_emopain_mat(tmp_path / "P113N.mat", data))
    assert rec.coords.shape == (5, 22, 3) and rec.coords.dtype == np.float32
    for j in range(22):
        np.testing.assert_array_equal(
            rec.coords[:, j, 0], np.arange(t) * 1000 + j
        )  # X: columns 1-22
        np.testing.assert_array_equal(rec.coords[:, j, 1], np.arange(t) * 1000 + 22 + j)  # Y: 23-44
        np.testing.assert_array_equal(rec.coords[:, j, 2], np.arange(t) * 1000 + 44 + j)  # Z: 45-66
    np.testing.assert_array_equal(rec.emg, np.arange(t)[:, None] * 1000 + np.arange(66, 70))
    assert rec.exercise.tolist() == [0, 3, 8, 1, 2] and rec.exercise.dtype == np.int64
    assert rec.pain.tolist() == [-1, 0, 1, 2, 2]
    assert rec.protective.tolist() == [0, 1, 1, 0, 1]
    np.testing.assert_array_equal(rec.protective_types, np.eye(5))
    assert (rec.name, rec.subject, rec.group, rec.level) == ("P113N", "P113", "patient", "normal")
    # build_emopain_matrix is the inverse
    back = build_emopain_matrix(
        rec.coords, rec.emg, rec.exercise, rec.pain, rec.protective, rec.protective_types
    )
    np.testing.assert_array_equal(back, data)
    # CSV, with and without the header line, reads to the same matrix
    for header in (True, False):
        path = write_emopain_csv(tmp_path / f"C012D_{header}" / "C012D.csv", data, header=header)
        np.testing.assert_array_equal(read_emopain_matrix(path), data)
    assert column_meaning(1) == "X of joint 0" and column_meaning(44) == "Y of joint 21"
    assert column_meaning(45) == "Z of joint 0" and column_meaning(72) == "pain level"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("P113N.mat", ("P113", "patient", "normal")),
        ("C012D.csv", ("C012", "control", "difficult")),
        ("P1D", ("P1", "patient", "difficult")),
    ],
)
def test_file_names(name, expected):
    assert parse_emopain_name(name) == expected


@pytest.mark.parametrize(
    "name", ["X113N.mat", "P113.mat", "P113n.mat", "p113N.mat", "P11a3N.csv", "PN.mat"]
)
def test_bad_file_names(name, tmp_path):
    with pytest.raises(DataFormatError, match=r"is not <P\|C><digits><N\|D>"):
        parse_emopain_name(name)
    path = write_emopain_mat(tmp_path / name, labelled_matrix(3)) if name.endswith(".mat") else None
    if path is not None:
        with pytest.raises(DataFormatError, match=name.replace(".", r"\.")):
            read_emopain(path)


def test_error_wrong_width(tmp_path):
    path = write_emopain_mat(tmp_path / "P001N.mat", np.zeros((10, 77)), validate=False)
    with pytest.raises(
        DataFormatError,
        match=r"P001N\.mat: field 'data' has 77 columns \(shape \(10, 77\)\); expected 78",
    ):
        read_emopain(path)
    csv = tmp_path / "P002N.csv"
    lines = [",".join(["0"] * 78)] * 3 + [",".join(["0"] * 77)]
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataFormatError, match=r"P002N\.csv: row 4 \(line 4\) has 77 columns; expected 78"
    ):
        read_emopain(csv)


def test_error_non_numeric_csv(tmp_path):
    data = labelled_matrix(4)
    path = write_emopain_csv(tmp_path / "P001N.csv", data)
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[11] = "abc"  # column 12 of data row 2 (line 3: the header is line 1)
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataFormatError,
        match=r"P001N\.csv: column 12 \(X of joint 11\) is 'abc' at row 2 \(line 3\); expected a number",
    ):
        read_emopain(path)
    # without a header, a typo in the first line is an error too, not a header
    path = write_emopain_csv(tmp_path / "P002N.csv", data, header=False)
    lines = path.read_text().splitlines()
    lines[0] = "1.5x," + lines[0].split(",", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataFormatError,
        match=r"P002N\.csv: column 1 \(X of joint 0\) is '1\.5x' at row 1 \(line 1\)",
    ):
        read_emopain(path)


def test_error_nan(tmp_path):
    data = labelled_matrix(6)
    data[2, 50] = np.nan  # column 51: Z of joint 6, row 3
    data[4, 3] = np.inf
    path = write_emopain_mat(tmp_path / "C003N.mat", data, validate=False)
    with pytest.raises(
        DataFormatError,
        match=r"C003N\.mat: column 51 \(Z of joint 6\) is nan at row 3; NaN and inf are not allowed \(2 NaN/inf values in the file\)",
    ):
        read_emopain(path)
    csv = write_emopain_csv(tmp_path / "C003D.csv", data, validate=False)
    with pytest.raises(
        DataFormatError, match=r"C003D\.csv: column 51 \(Z of joint 6\) is nan at row 3 \(line 4\)"
    ):
        read_emopain(csv)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (71, 9, r"column 71 \(exercise type\) is 9 at row 2; expected an integer 0\.\.8"),
        (71, 2.5, r"column 71 \(exercise type\) is 2\.5 at row 2"),
        (72, 3, r"column 72 \(pain level\) is 3 at row 2; expected -1 \(not reported\), 0, 1 or 2"),
        (72, -2, r"column 72 \(pain level\) is -2 at row 2"),
        (73, 2, r"column 73 \(protective behaviour\) is 2 at row 2; expected 0 or 1"),
        (76, -1, r"column 76 \(protective type support/bracing\) is -1 at row 2; expected 0 or 1"),
    ],
)
def test_error_label_out_of_range(tmp_path, column, value, message):
    data = labelled_matrix(3)
    data[1, column - 1] = value
    path = write_emopain_mat(tmp_path / "P009D.mat", data, validate=False)
    with pytest.raises(DataFormatError, match=r"P009D\.mat: " + message):
        read_emopain(path)
    with pytest.raises(DataFormatError, match=message.split(";")[0]):
        write_emopain_mat(tmp_path / "P010D.mat", data)  # the writer validates by default


def test_error_missing_key_and_unreadable(tmp_path):
    import scipy.io

    path = tmp_path / "P001N.mat"
    scipy.io.savemat(path, {"values": np.zeros((3, 78))})
    with pytest.raises(
        DataFormatError, match=r"P001N\.mat: field 'data' is missing; it has \['values'\]"
    ):
        read_emopain(path)
    bad = tmp_path / "P002N.mat"
    bad.write_bytes(b"not a mat file at all")
    with pytest.raises(DataFormatError, match=r"P002N\.mat: not a readable MATLAB \.mat file"):
        read_emopain(bad)
    (tmp_path / "P001N.csv").write_text("")
    with pytest.raises(DataFormatError, match="more than one file"):
        list_emopain_files(tmp_path)


# -- segmentation and voting ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "seg", "stride", "expected"),
    [
        (180, 180, 180, [0]),
        (100, 180, 180, [0]),  # shorter than a segment: one padded segment
        (181, 180, 180, [0, 180]),
        (400, 180, 180, [0, 180, 360]),
        (180, 180, 45, [0]),
        (200, 180, 45, [0, 45]),
        (460, 180, 45, [0, 45, 90, 135, 180, 225, 270, 315]),
        (0, 180, 45, []),
    ],
)
def test_segment_starts(length, seg, stride, expected):
    starts = segment_starts(length, seg, stride)
    assert starts.tolist() == expected
    if expected:  # the last sample reaches the end, the one before does not
        assert starts[-1] + seg >= length and (len(starts) == 1 or starts[-2] + seg < length)


def test_majority_label_and_the_exact_half_edge():
    assert majority_label([0, 0, 1, 2, 2, 2]) == 2
    assert majority_label([1, 1, 2, 2]) == 1  # a tie goes to the smallest label
    # protective vote: MORE than half; exactly half is non-protective
    assert majority_label([1, 1, 0, 0], threshold=0.5) == 0
    assert majority_label([1, 1, 1, 0, 0], threshold=0.5) == 1
    # padded frames never vote
    mask = np.array([True] * 3 + [False] * 5)
    assert majority_label([1, 1, 0, 0, 0, 0, 0, 0], mask, threshold=0.5) == 1
    assert majority_label([2, 2, 1, 0, 0, 0, 0, 0], mask) == 2
    with pytest.raises(ValueError, match="no real frames"):
        majority_label([1, 0], [False, False])


def test_exercise_instances_split_at_dropped_frames():
    exercise = np.array([3] * 5 + [8] * 3 + [3] * 2)
    assert exercise_instances(exercise) == [(0, 5, 3), (5, 8, 8), (8, 10, 3)]
    keep = np.ones(10, bool)
    keep[2] = keep[6] = False
    assert exercise_instances(exercise, keep) == [
        (0, 2, 3),
        (3, 5, 3),
        (5, 6, 8),
        (7, 8, 8),
        (8, 10, 3),
    ]


def test_loso_folds_are_disjoint_and_cover_every_subject():
    subjects = ["P003", "C001", "P001", "P003", "C002"]
    folds = loso_folds(subjects)
    assert [held for _, held in folds] == sorted(set(subjects))
    for train, held in folds:
        assert held not in train
        assert set(train) | {held} == set(subjects)
        assert len(train) == len(set(subjects)) - 1


def test_joint_graph_angles_and_energies():
    assert len(JOINT_EDGES) == 21 and len(ANGLE_TRIPLETS) == 24
    assert (
        (1, 0, 4) in ANGLE_TRIPLETS and (7, 8, 19) in ANGLE_TRIPLETS and (0, 7, 8) in ANGLE_TRIPLETS
    )
    coords = np.zeros((2, 22, 3))
    coords[:, 1] = [
        1,
        0,
        0,
    ]  # right hip on +x of the pelvis, left hip on +y: a right angle at joint 0
    coords[:, 4] = [0, 1, 0]
    angles = compute_joint_angles(coords)
    assert angles.shape == (2, 24)
    assert np.isclose(angles[0, ANGLE_TRIPLETS.index((1, 0, 4))], np.pi / 2)
    moving = np.zeros((3, 22, 3))
    moving[:, 5, 0] = [0.0, 0.5, 1.0]  # joint 5 moves 0.5 per frame
    energy = compute_joint_energies(moving, fps=60.0)
    assert np.allclose(energy[:, 5], (0.5 * 60) ** 2) and np.allclose(energy[:, 4], 0)
