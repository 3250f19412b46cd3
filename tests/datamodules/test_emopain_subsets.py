"""EmoPainDataModule options of issue 5: keep_classes (pain-only stage 2) and the
per-frame protective labels (cascade stage 1)."""

import numpy as np
import pytest

from lbp_motion.datamodules.emopain import EmoPainDataModule
from lbp_motion.errors import ConfigError

SYN = {
    "num_train_patients": 2,
    "num_train_controls": 1,
    "num_val_patients": 2,
    "num_val_controls": 1,
    "frames_per_file": 1200,
}


def test_keep_classes_keeps_pain_segments_relabelled_and_the_same_standardisation():
    full = EmoPainDataModule(task="pain", features="coords", synthetic=SYN)
    pain = EmoPainDataModule(
        task="pain", features="coords", synthetic=SYN, keep_classes=["low", "high"]
    )
    assert pain.classes == ["low", "high"] and pain.spec["classes"] == ["low", "high"]
    counts_full, counts_pain = full.split_counts(), pain.split_counts()
    for split in ("train", "val", "test"):
        assert counts_pain[split] == {
            "low": counts_full[split]["low"],
            "high": counts_full[split]["high"],
        }
        assert set(pain.dataset(split).labels.tolist()) <= {0, 1}
    # the same samples as the full data's low/high ones, in order, with labels shifted by one
    full_train, pain_train = full.dataset("train"), pain.dataset("train")
    keep = full_train.labels > 0
    np.testing.assert_array_equal(pain_train.index, full_train.index[keep])
    np.testing.assert_array_equal(pain_train.labels, full_train.labels[keep] - 1)
    # standardised as with all classes, so a stage-2 model sees the features of the full run
    np.testing.assert_allclose(pain.feature_mean, full.feature_mean)
    np.testing.assert_allclose(pain.feature_std, full.feature_std)


def test_keep_classes_must_be_classes_of_the_task():
    with pytest.raises(ConfigError, match="keep_classes"):
        EmoPainDataModule(task="pain", keep_classes=["protective"])


def test_frame_protective_is_the_per_frame_label_zero_on_padding():
    dm = EmoPainDataModule(
        task="protective", features="coords", synthetic=SYN, frame_protective=True
    )
    ds = dm.dataset("val")
    stacked = ds.tensors()
    frames, mask, y = stacked["frame_protective"], stacked["mask"], stacked["y"]
    assert frames.shape == mask.shape and frames.dtype.is_floating_point is False
    assert (frames[~mask] == 0).all()
    # the window label is the vote of these very frames (more than half protective)
    share = (frames * mask).sum(dim=1) / mask.sum(dim=1)
    assert ((share > 0.5).long() == y).all()
    assert y.sum() > 0  # the check above is not vacuous
    item = ds[int(y.argmax())]
    assert item["frame_protective"].tolist() == frames[int(y.argmax())].tolist()
    assert (
        "frame_protective"
        not in EmoPainDataModule(task="protective", features="coords", synthetic=SYN).dataset(
            "val"
        )[0]
    )
