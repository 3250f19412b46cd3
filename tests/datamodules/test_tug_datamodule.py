import logging
import shutil

import numpy as np
import pytest
import torch

from lbp_motion.datamodules.tug import TUGDataModule
from lbp_motion.datasets.format import (
    DataFormatError,
    LabelRow,
    read_labels,
    write_labels,
    write_recording,
)
from lbp_motion.datasets.splits import write_split_file


def test_windows_batches_and_no_subject_on_two_sides(tiny_tug):
    dm = TUGDataModule(str(tiny_tug), window=30, stride=5, batch_size=8)
    dm.setup("fit")
    subjects = {}
    for split in ("train", "val", "test"):
        ds = dm._datasets[split]
        assert len(ds) > 0
        for r in np.unique(ds.index[:, 0]):
            subjects.setdefault(dm.recording_subjects[r], set()).add(split)
    assert all(len(sides) == 1 for sides in subjects.values())
    # every class is on every side (label-stratified split of 3 subjects per class)
    counts = dm.split_counts()
    assert all(n > 0 for split in counts.values() for n in split.values())
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (8, 30, 17 * 3) and batch["x"].dtype == torch.float32
    assert batch["mask"].shape == (8, 30) and batch["mask"].dtype == torch.bool
    assert batch["y"].dtype == torch.int64
    assert dm.spec["num_features"] == 51 and dm.describe()["fps"] == 30.0


def test_windows_are_index_maps_not_copies(tiny_tug):
    dm = TUGDataModule(str(tiny_tug))
    dm.setup("fit")
    train, test = dm._datasets["train"], dm._datasets["test"]
    assert train.keypoints is test.keypoints  # one list of per-recording arrays
    r, start = train.index[3]
    item = train[3]
    kp = train.keypoints[r][start : start + 30]
    # x' of the first joint is derived from exactly those frames
    vis = kp[:, 0, 2] >= 0.3
    assert np.all((item["x"][:, 0].numpy() != 0) <= vis)
    assert train.index.dtype == np.int64 and train.index.shape[1] == 2


def test_split_file_fixes_the_split(tiny_tug, tmp_path):
    subjects = sorted({r.subject for r in read_labels(tiny_tug)})
    assignment = {
        s: ("test" if i == 0 else "val" if i == 1 else "train") for i, s in enumerate(subjects)
    }
    dm = TUGDataModule(
        str(tiny_tug), split_file=str(write_split_file(tmp_path / "split.csv", assignment))
    )
    dm.setup("fit")
    assert dm.subject_split == assignment


def test_class_weights_are_inverse_frequency(tiny_tug):
    dm = TUGDataModule(str(tiny_tug))
    dm.setup("fit")
    counts = torch.bincount(dm.train_labels(), minlength=3).float()
    w = dm.class_weights()
    torch.testing.assert_close(w * counts, torch.full((3,), counts.sum() / 3))


def test_missing_folder(tmp_path):
    with pytest.raises(DataFormatError, match="data folder not found"):
        TUGDataModule(str(tmp_path / "absent")).setup("fit")


def test_row_without_file(tiny_copy):
    victim = read_labels(tiny_copy)[2].recording
    (tiny_copy / f"{victim}.npz").unlink()
    with pytest.raises(
        DataFormatError, match=f"line 4: recording '{victim}' has no file {victim}.npz"
    ):
        TUGDataModule(str(tiny_copy)).setup("fit")


def test_file_without_row(tiny_copy):
    shutil.copy(next(tiny_copy.glob("*.npz")), tiny_copy / "stray.npz")
    with pytest.raises(DataFormatError, match="stray.npz: file has no row"):
        TUGDataModule(str(tiny_copy)).setup("fit")


def test_label_outside_classes(tiny_copy):
    rows = read_labels(tiny_copy)
    rows[0].label = "severe"
    write_labels(tiny_copy, rows)
    with pytest.raises(DataFormatError, match="line 2: field 'label' is 'severe'; expected one of"):
        TUGDataModule(str(tiny_copy)).setup("fit")


def test_bad_npz_is_named(tiny_copy):
    victim = next(tiny_copy.glob("*.npz"))
    np.savez(
        victim,
        keypoints=np.zeros((40, 17, 3)),
        layout=np.asarray("coco17"),
        fps=np.asarray(30.0),
        image_size=np.asarray([10, 10]),
    )
    with pytest.raises(
        DataFormatError, match=f"{victim.name}: field 'keypoints' has dtype float64"
    ):
        TUGDataModule(str(tiny_copy)).setup("fit")


def test_short_recording_is_skipped_with_a_warning(tiny_copy, caplog):
    kp = np.zeros((12, 17, 3), np.float32)
    write_recording(tiny_copy / "short.npz", kp, layout="coco17", fps=30, image_size=(100, 100))
    write_labels(tiny_copy, read_labels(tiny_copy) + [LabelRow("short", "s999", "low")])
    dm = TUGDataModule(str(tiny_copy))
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert "short.npz: 12 frames, shorter than one window of 30; skipped" in caplog.text
    assert "short" not in dm.recording_names


@pytest.mark.e2e
def test_cli_reports_bad_input_in_one_line(tiny_copy, tmp_path, capsys):
    from lbp_motion.cli import main

    rows = read_labels(tiny_copy)
    rows[0].label = "severe"
    write_labels(tiny_copy, rows)
    code = main(
        [
            "fit",
            "--config",
            "experiments/tug/attention_small.yaml",
            "--data.root",
            str(tiny_copy),
            "--run.out_dir",
            str(tmp_path),
            "--run.wandb",
            "disabled",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "lbp: error:" in err and "labels.csv, line 2: field 'label' is 'severe'" in err
    assert "Traceback" not in err


def test_train_sites_keep_the_common_test_split(tmp_path):
    from lbp_motion.datasets.synthetic import generate_tug_dataset
    from lbp_motion.errors import ConfigError

    root = generate_tug_dataset(
        tmp_path / "s", num_subjects=12, recordings_per_subject=1, sites=3, seed=1
    )
    full = TUGDataModule(str(root), stride=15)
    full.setup("fit")
    one = TUGDataModule(str(root), stride=15, train_sites=["site1"])
    one.setup("fit")
    np.testing.assert_array_equal(one._datasets["test"].index, full._datasets["test"].index)
    for split in ("train", "val"):
        recs = set(one._datasets[split].index[:, 0].tolist())
        assert recs and {one.recording_sites[r] for r in recs} == {"site1"}
    with pytest.raises(ConfigError, match="sites \\['site9'\\] are not in labels.csv"):
        TUGDataModule(str(root), train_sites=["site9"]).setup("fit")
