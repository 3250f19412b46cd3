"""Data that would train and report numbers that mean nothing (issue 12, item 5): one
class, recordings without a visible joint, a broken body scale, a class missing from a
split."""

import logging

import numpy as np
import pytest

from lbp_motion.datamodules.emopain import EmoPainDataModule
from lbp_motion.datamodules.tug import TUGDataModule
from lbp_motion.datasets.format import (
    DataFormatError,
    read_labels,
    read_recording,
    write_labels,
    write_recording,
)
from lbp_motion.datasets.layouts import COCO17
from lbp_motion.datasets.splits import write_split_file


def test_one_class_is_refused_when_fitting_but_not_when_testing(tiny_copy):
    rows = read_labels(tiny_copy)
    for r in rows:
        r.label = "low"
    write_labels(tiny_copy, rows)
    with pytest.raises(
        DataFormatError, match=r"^data: the training split has samples of one class only \('low'\)"
    ):
        TUGDataModule(str(tiny_copy)).setup("fit")
    dm = TUGDataModule(str(tiny_copy))
    dm.setup("test")  # a checkpoint may be tested on any folder
    assert dm.absent_classes["test"] == ["medium", "high"]


def test_emopain_with_one_training_class_is_refused():
    one_class = {
        "num_train_patients": 0,
        "num_train_controls": 1,
        "num_val_patients": 1,
        "num_val_controls": 1,
        "frames_per_file": 600,
    }  # controls only in train/: no pain to learn
    with pytest.raises(
        DataFormatError, match=r"training split has samples of one class only \('no_pain'\)"
    ):
        EmoPainDataModule(task="pain", features="coords", synthetic=one_class).setup("fit")


def _blank(path):
    rec = read_recording(path)
    write_recording(
        path, np.zeros_like(rec.keypoints), layout="coco17", fps=rec.fps, image_size=rec.image_size
    )


def test_recordings_without_a_visible_joint_are_skipped_then_refused(tiny_copy, caplog):
    names = [r.recording for r in read_labels(tiny_copy)]
    _blank(tiny_copy / f"{names[0]}.npz")
    dm = TUGDataModule(str(tiny_copy))
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert f"{names[0]}.npz: no joint is visible (confidence >= 0.3) in any of its" in caplog.text
    assert names[0] not in dm.recording_names and len(dm.recording_names) == len(names) - 1
    for name in names[1:]:
        _blank(tiny_copy / f"{name}.npz")
    with pytest.raises(
        DataFormatError, match=f"^{tiny_copy}: no usable recording: 9 have no visible joint"
    ):
        TUGDataModule(str(tiny_copy)).setup("fit")


def test_a_collapsed_torso_is_reported_with_file_and_frame(tiny_copy):
    name = read_labels(tiny_copy)[0].recording
    path = tiny_copy / f"{name}.npz"
    rec = read_recording(path)
    kp = rec.keypoints.copy()
    kp[..., 2] = 1.0
    hips = [COCO17.index("left_hip"), COCO17.index("right_hip")]
    shoulders = [COCO17.index("left_shoulder"), COCO17.index("right_shoulder")]
    kp[:, shoulders, :2] = kp[:, hips, :2]
    kp[:, shoulders, 1] += 0.001  # torso 1/1000 px, the body spreads over hundreds of pixels
    write_recording(path, kp, layout="coco17", fps=rec.fps, image_size=rec.image_size)
    with pytest.raises(
        DataFormatError,
        match=rf"^{path}: body scale \(median torso length\) is 0.001\d* pixels but "
        r"frame \d+'s visible joints spread over \d+",
    ):
        TUGDataModule(str(tiny_copy)).setup("fit")


@pytest.mark.e2e
def test_a_class_absent_from_a_split_is_warned_about_and_in_metrics_json(
    tiny_copy, tmp_path, caplog, run_lbp
):
    labels = {r.subject: r.label for r in read_labels(tiny_copy)}
    split = {
        "s001": "train",
        "s002": "train",
        "s005": "train",
        "s009": "train",
        "s003": "val",
        "s004": "val",
        "s007": "val",
        "s006": "test",
        "s008": "test",
    }
    assert sorted({labels[s] for s, side in split.items() if side == "test"}) == ["low", "medium"]
    split_file = write_split_file(tmp_path / "split.csv", split)
    dm = TUGDataModule(str(tiny_copy), split_file=str(split_file))
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert dm.absent_classes.get("test") == ["high"]
    assert (
        "data: the test split has no samples of class 'high'; per-class test metrics of it are 0"
        in caplog.text
    )

    run = run_lbp(
        "fit",
        "--config",
        "experiments/tug/attention_small.yaml",
        "--data.root",
        str(tiny_copy),
        "--data.split_file",
        str(split_file),
        "--trainer.max_epochs",
        "1",
    )
    from tests.conftest import read_json

    metrics = read_json(run / "metrics.json")
    assert metrics["absent_classes"]["test"] == ["high"]
    assert set(metrics["absent_classes"]) <= {"train", "val", "test"}
