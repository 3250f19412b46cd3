"""EmoPain format (reader, writer, errors), segmentation and voting, EmoPainDataModule,
and the synthetic generator."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from lbp_motion.datamodules.emopain import EmoPainDataModule
from lbp_motion.datasets.emopain import (
    ANGLE_TRIPLETS,
    EXERCISES,
    JOINT_EDGES,
    NUM_COLUMNS,
    build_emopain_matrix,
    column_meaning,
    compute_joint_angles,
    compute_joint_energies,
    exercise_instances,
    frame_label_shares,
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
from lbp_motion.datasets.splits import loso_folds, write_split_file
from lbp_motion.datasets.synthetic import ensure_synthetic_emopain, generate_emopain_dataset
from lbp_motion.errors import ConfigError

BATCH_KEYS = {"x", "mask", "y", "aux", "recording", "subject", "start"}


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


@pytest.fixture(scope="module")
def tiny_emopain(tmp_path_factory):
    """8 participants (train 3 P + 2 C, validation 2 P + 1 C), 2 levels, 900 frames."""
    return generate_emopain_dataset(
        tmp_path_factory.mktemp("tiny_emopain"),
        num_train_patients=3,
        num_train_controls=2,
        num_val_patients=2,
        num_val_controls=1,
        frames_per_file=900,
        seed=0,
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


# -- the DataModule on hand-built data ---------------------------------------------------------


@pytest.fixture
def hand_built(tmp_path):
    """train/P001N: bend 0-459 (pain 1/2 with a -1 gap), walking 460-499;
    validation/C001N: standing still, 200 frames."""
    t = 500
    exercise = np.array([3] * 460 + [8] * 40)
    pain = np.array([1] * 100 + [2] * 100 + [-1] * 60 + [2] * 200 + [0] * 40)
    protective = np.zeros(t, int)
    protective[0:90] = 1  # the first window (0-179) is exactly half protective
    protective[300:460] = 1
    protective[460:481] = 1  # 21 of the walking instance's 40 real frames
    root = tmp_path / "ds"
    write_emopain_mat(
        root / "train" / "P001N.mat",
        labelled_matrix(t, exercise=exercise, pain=pain, protective=protective),
    )
    write_emopain_mat(
        root / "validation" / "C001N.mat", labelled_matrix(200, exercise=7, pain=0, seed=1)
    )
    return root


def _rows(ds):
    return [
        (ds[i]["start"].item(), int(ds[i]["mask"].sum()), ds[i]["y"].item(), ds[i]["aux"].item())
        for i in range(len(ds))
    ]


def test_pain_segments_drop_unlabelled_frames_and_vote(hand_built):
    dm = EmoPainDataModule(str(hand_built), task="pain")
    dm.setup("fit")
    # (start, real frames, label, exercise): the -1 gap splits the bend run in two
    assert _rows(dm._datasets["train"]) == [
        (0, 180, 1, 3),  # 100 low + 80 high -> low
        (180, 20, 2, 3),  # padded past the instance's end at 200
        (260, 180, 2, 3),
        (440, 20, 2, 3),
        (460, 40, 0, 8),  # shorter than a segment: one padded segment
    ]
    item = dm._datasets["train"][4]
    assert item["mask"][:40].all() and not item["mask"][40:].any()
    assert (item["x"][40:] == 0).all()
    assert _rows(dm._datasets["val"]) == [(0, 180, 0, 7), (180, 20, 0, 7)]
    assert dm.recording_names == ["P001N", "C001N"] and dm.subject_names == ["C001", "P001"]
    assert (
        dm._datasets["train"][0]["subject"].item() == 1
        and dm._datasets["val"][0]["subject"].item() == 0
    )


def test_protective_windows_vote_more_than_half(hand_built):
    dm = EmoPainDataModule(str(hand_built), task="protective")
    assert dm.spec["segment_length"] == 180 and dm.spec["segment_stride"] == 45
    dm.setup("fit")
    rows = _rows(dm._datasets["train"])
    assert [r[0] for r in rows] == [0, 45, 90, 135, 180, 225, 270, 315, 460]
    assert [r[2] for r in rows] == [
        0,
        0,
        0,
        0,
        0,
        1,
        1,
        1,
        1,
    ]  # window 0 is exactly 50%: non-protective
    assert rows[7][1] == 145 and rows[8][1] == 40  # padded windows; padded frames do not vote
    assert dm.train_labels().tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    w = dm.class_weights()
    torch.testing.assert_close(w, torch.tensor([9 / 10, 9 / 8]))


def test_settings_are_checked_without_reading(tmp_path):
    absent = str(tmp_path / "absent")
    assert EmoPainDataModule(absent, features="coords").spec["num_features"] == 66
    assert EmoPainDataModule(absent, features="emg").spec["num_features"] == 4
    spec = EmoPainDataModule(
        absent, features="both", joint_angles=True, joint_energies=True, task="protective"
    ).spec
    assert spec["num_features"] == 70 + 24 + 22 and spec["classes"] == [
        "non_protective",
        "protective",
    ]
    assert spec["aux_classes"] == list(EXERCISES) and spec["fps"] == 60.0
    assert EmoPainDataModule(absent, classes=["no_pain", "low", "high"]).classes == [
        "no_pain",
        "low",
        "high",
    ]
    with pytest.raises(ConfigError, match="classes"):
        EmoPainDataModule(absent, classes=["low", "medium", "high"])
    with pytest.raises(ConfigError, match="features"):
        EmoPainDataModule(absent, features="video")
    with pytest.raises(ConfigError, match="task"):
        EmoPainDataModule(absent, task="severity")
    with pytest.raises(ConfigError, match="overlap"):
        EmoPainDataModule(absent, task="protective", overlap=1.0)
    with pytest.raises(DataFormatError, match="data folder not found"):
        EmoPainDataModule(absent).setup("fit")


# -- the DataModule on synthetic data ------------------------------------------------------------


def test_batches_keys_and_shapes(tiny_emopain):
    dm = EmoPainDataModule(
        str(tiny_emopain), task="pain", joint_angles=True, joint_energies=True, batch_size=4
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == BATCH_KEYS
    assert batch["x"].shape == (4, 180, 116) and batch["x"].dtype == torch.float32
    assert batch["mask"].shape == (4, 180) and batch["mask"].dtype == torch.bool
    for key in ("y", "aux", "recording", "subject", "start"):
        assert batch[key].shape == (4,) and batch[key].dtype == torch.int64
    assert batch["aux"].max() < 9 and batch["subject"].max() < len(dm.subject_names)
    first = dm.dataset("train")
    dm.setup("fit")  # idempotent
    assert dm.dataset("train") is first and len(first) == len(dm.train_labels())
    assert (
        dm.has_split("test")
        and dm.describe()["subjects"]["test"] == dm.describe()["subjects"]["val"]
    )
    assert dm.subjects() == dm.subject_names


def test_standardisation_is_fitted_on_train_only(tiny_emopain):
    dm = EmoPainDataModule(str(tiny_emopain), task="pain", joint_angles=True)
    dm.setup("fit")
    train = dm._datasets["train"].tensors()
    x = train["x"][train["mask"]]  # non-overlapping segments: every training frame once
    torch.testing.assert_close(x.mean(0), torch.zeros(x.shape[1]), atol=1e-3, rtol=0)
    torch.testing.assert_close(x.std(0), torch.ones(x.shape[1]), atol=1e-2, rtol=0)
    assert (train["x"][~train["mask"]] == 0).all()  # padding stays 0
    val = dm._datasets["val"].tensors()
    xv = val["x"][val["mask"]]
    assert xv.mean(0).abs().max() > 0.05 and (val["x"][~val["mask"]] == 0).all()
    raw = EmoPainDataModule(str(tiny_emopain), task="pain", joint_angles=True, standardize=False)
    raw.setup("fit")
    r = raw._datasets["train"].tensors()
    fitted = (r["x"][r["mask"]] - torch.from_numpy(dm.feature_mean)) / torch.from_numpy(
        dm.feature_std
    )
    torch.testing.assert_close(fitted, x, atol=1e-4, rtol=1e-4)


def _subjects_by_split(dm):
    out = {}
    for split in ("train", "val", "test"):
        ds = dm._datasets[split]
        out[split] = {dm.subject_names[int(ds.subject_ids[r])] for r in ds.index[:, 0]}
    return out


def test_no_subject_on_two_sides(tiny_emopain, tmp_path):
    challenge = EmoPainDataModule(str(tiny_emopain))
    challenge.setup("fit")
    sides = _subjects_by_split(challenge)
    assert sides["train"] and not sides["train"] & sides["val"] and sides["val"] == sides["test"]
    assert all(s in {"P001", "P002", "P003", "C001", "C002"} for s in sides["train"])
    subject = EmoPainDataModule(
        str(tiny_emopain), split="subject", val_fraction=0.25, test_fraction=0.25, split_seed=1
    )
    subject.setup("fit")
    sides = _subjects_by_split(subject)
    assert all(sides.values())
    assert not (
        sides["train"] & sides["val"]
        or sides["train"] & sides["test"]
        or sides["val"] & sides["test"]
    )
    assert set().union(*sides.values()) == set(subject.subjects())
    # a split file fixes the split; LOSO folds written as split files stay disjoint
    folds = loso_folds(subject.subjects())
    train, held = folds[0]
    assignment = {s: "train" for s in train} | {held: "test", train[0]: "val"}
    dm = EmoPainDataModule(
        str(tiny_emopain), split_file=str(write_split_file(tmp_path / "fold0.csv", assignment))
    )
    dm.setup("fit")
    assert dm.subject_split == assignment
    assert _subjects_by_split(dm) == {"train": set(train[1:]), "val": {train[0]}, "test": {held}}


def test_synthetic_cache(tmp_path, monkeypatch):
    settings = dict(
        num_train_patients=1,
        num_train_controls=1,
        num_val_patients=1,
        num_val_controls=1,
        frames_per_file=240,
    )
    first = ensure_synthetic_emopain(tmp_path / "cache", **settings)
    stamp = os.path.getmtime(first / "train" / "P001N.mat")
    assert ensure_synthetic_emopain(tmp_path / "cache", **settings) == first
    assert os.path.getmtime(first / "train" / "P001N.mat") == stamp
    assert ensure_synthetic_emopain(tmp_path / "cache", **{**settings, "seed": 1}) != first
    assert sorted(p.name for p in (first / "train").iterdir()) == [
        "C001D.mat",
        "C001N.mat",
        "P001D.mat",
        "P001N.mat",
    ]
    assert sorted(p.name for p in (first / "validation").iterdir()) == [
        "C002D.mat",
        "C002N.mat",
        "P002D.mat",
        "P002N.mat",
    ]
    monkeypatch.setenv("LBP_CACHE", str(tmp_path / "env"))
    dm = EmoPainDataModule(task="protective", synthetic=settings)
    assert dm.resolve_root().parent == tmp_path / "env" / "synthetic"
    assert read_emopain(first / "train" / "P001N.mat").num_frames == 240
    with pytest.raises(TypeError):
        ensure_synthetic_emopain(tmp_path / "cache", frames=10)


def test_synthetic_label_shares_roughly_match_spec(tmp_path):
    """Default participants (train 10 P + 6 C, validation 4 P + 3 C), 30 s per file."""
    root = generate_emopain_dataset(tmp_path / "ds", frames_per_file=1800, seed=0)
    spec = {
        "train": {"no_pain": 0.2402, "low": 0.1132, "high": 0.0853, "protective": 0.1870},
        "validation": {"no_pain": 0.8378, "low": 0.1355, "high": 0.0267, "protective": 0.0677},
    }
    shares = {}
    for split in ("train", "validation"):
        recs = [read_emopain(p) for p in list_emopain_files(root / split)]
        assert len(recs) == (32 if split == "train" else 14)
        shares[split] = frame_label_shares(recs)
        print(
            split,
            "%",
            {k: round(100 * v, 2) for k, v in shares[split].items()},
            "SPEC %",
            {k: round(100 * v, 2) for k, v in spec[split].items()},
        )
        for key, target in spec[split].items():
            assert abs(shares[split][key] - target) < 0.06, (split, key, shares[split][key], target)
        exercises = np.bincount(np.concatenate([r.exercise for r in recs]), minlength=9)
        assert (exercises > 0).all()  # every exercise type, 'other' included
    assert abs(shares["train"]["unlabelled"] - 0.56) < 0.06
    assert shares["validation"]["protective"] < shares["train"]["protective"]
    rec = read_emopain(root / "train" / "P001N.mat")
    types = rec.protective_types
    assert (types[rec.protective == 0] == 0).all() and (
        types[rec.protective == 1].sum(1) >= 1
    ).all()
    controls = [
        read_emopain(p) for p in list_emopain_files(root / "train") if p.name.startswith("C")
    ]
    assert all(set(np.unique(r.pain)) <= {-1, 0} for r in controls)
    feet = rec.coords[:, [3, 6], 1]  # Y up, metres: ankles near the floor, head top above them
    assert 0.0 < feet.min() and feet.max() < 0.8 and np.median(rec.coords[:, 21, 1]) > 1.4


def test_emopain_balancing_and_federation_support(tmp_path):
    import torch

    from lbp_motion.datamodules.emopain import EmoPainDataModule
    from lbp_motion.datasets.synthetic import generate_emopain_dataset
    from lbp_motion.federated import FedAvgStrategy
    from lbp_motion.training_plan import planned_train_loader

    root = generate_emopain_dataset(
        tmp_path / "ep",
        num_train_patients=3,
        num_train_controls=2,
        num_val_patients=1,
        num_val_controls=1,
        frames_per_file=900,
        seed=3,
    )
    plain = EmoPainDataModule(str(root), task="protective", features="coords")
    plain.setup("fit")
    bal = EmoPainDataModule(str(root), task="protective", features="coords", balance="undersample")
    bal.setup("fit")
    counts = torch.bincount(bal.train_labels())
    assert counts[0] == counts[1] == torch.bincount(plain.train_labels()).min()
    assert bal.num_real_train_samples == len(plain.dataset("train"))
    assert len(bal.dataset("val")) == len(plain.dataset("val"))
    item = bal.dataset("train")[0]
    assert {"aux", "subject", "x", "mask"} <= set(item)
    strategy = FedAvgStrategy(num_clients=2, partition="iid", seed=0)
    batch = next(iter(planned_train_loader(plain, [strategy])))
    n_k, clients = strategy.num_examples, strategy.client_subjects
    assert sum(n_k) == plain.num_real_train_samples and len(clients) == 2
    assert set(batch["subject"].tolist()) <= {
        plain.subject_names.index(s) for s in clients[int(batch["client"][0])]
    }
