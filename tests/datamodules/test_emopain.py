"""EmoPainDataModule: segments and their votes on hand-built data, the settings, batches,
standardisation and subject splits on tiny synthetic data, balancing and federation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lbp_motion.datamodules.emopain import EmoPainDataModule
from lbp_motion.datasets.emopain import EXERCISES, write_emopain_mat
from lbp_motion.datasets.format import DataFormatError
from lbp_motion.datasets.splits import loso_folds, write_split_file
from lbp_motion.datasets.synthetic import generate_emopain_dataset
from lbp_motion.errors import ConfigError
from tests.datasets.emopain.test_emopain import labelled_matrix

BATCH_KEYS = {"x", "mask", "y", "aux", "recording", "subject", "start"}


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
