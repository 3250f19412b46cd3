"""The ``recording_stats`` input stream: every window of a recording carries the mean
window statistics of the whole recording (issue 13: labels that belong to the person)."""

import numpy as np
import pytest
import torch

from lbp_motion.datamodules.tug import TUGDataModule
from lbp_motion.datasets.format import read_recording
from lbp_motion.datasets.layouts import COCO17
from lbp_motion.errors import ConfigError
from lbp_motion.evaluation.baselines import collect
from lbp_motion.models.statistics import window_statistics
from lbp_motion.transforms.streams import FRAME_STREAMS, frame_features, num_features
from tests.conftest import TINY_RUN_ARGS

AUGMENT = [{"name": "mirror", "p": 1.0}, {"name": "rotate", "degrees": 20}]


def _train(root, streams, **kwargs):
    dm = TUGDataModule(str(root), streams=streams, stride=15, **kwargs)
    dm.setup("fit")
    return dm


def test_widths_follow_the_frame_streams():
    assert num_features(COCO17, ["joint", "recording_stats"]) == 4 * 51
    assert num_features(COCO17, ["joint", "bone", "recording_stats"]) == 4 * 102
    assert frame_features(COCO17, ["joint", "bone", "recording_stats"]) == 102
    assert frame_features(COCO17, list(FRAME_STREAMS)) == num_features(COCO17, list(FRAME_STREAMS))


def test_every_window_carries_its_recordings_mean_window_statistics(tiny_tug):
    dm = _train(tiny_tug, ["joint", "recording_stats"])
    plain = _train(tiny_tug, ["joint"])
    assert dm.spec["num_features"] == 204
    ds, ref = dm._datasets["train"], plain._datasets["train"]
    items = [ds[i] for i in range(len(ds))]
    frames = [ref[i] for i in range(len(ref))]
    recordings = ds.index[:, 0]
    contexts = []
    for r in np.unique(recordings):
        rows = np.flatnonzero(recordings == r)
        assert len(rows) > 1
        # the frame part is the plain stream's, bit for bit
        for i in rows:
            assert torch.equal(items[i]["x"][:, :51], frames[i]["x"])
        # the context: the same in every frame and window of the recording ...
        first = items[rows[0]]
        context = first["x"][first["mask"]][0, 51:]
        for i in rows:
            real = items[i]["mask"]
            assert torch.equal(items[i]["x"][real, 51:], context.expand(int(real.sum()), -1))
            assert torch.all(items[i]["x"][~real] == 0)  # a masked frame stays all zeros
        # ... and the mean of its windows' statistics over real frames
        x = torch.stack([frames[i]["x"] for i in rows]).double()
        mask = torch.stack([frames[i]["mask"] for i in rows])
        expected = window_statistics(x, mask).mean(dim=0).float()
        torch.testing.assert_close(context, expected, rtol=1e-5, atol=1e-6)
        contexts.append(context)
    # recordings differ: the stream tells them apart
    assert len({tuple(c.tolist()) for c in contexts}) == len(contexts)


def test_augmentation_changes_the_frames_not_the_context(tiny_tug):
    train = _train(tiny_tug, ["joint", "recording_stats"], augment=AUGMENT)._datasets["train"]
    plain = _train(tiny_tug, ["joint", "recording_stats"]).real_train_dataset()
    for i in range(0, len(plain), 3):  # augmented items first: they fill the context cache
        a, b = train[(0, i)], plain[i]
        assert not torch.equal(a["x"][:, :51], b["x"][:, :51])  # mirrored and rotated
        real = a["mask"] & b["mask"]
        assert torch.equal(a["x"][real, 51:], b["x"][real, 51:])  # the recording's, unaugmented


def test_the_statistics_baselines_read_the_frame_streams_only(tiny_tug):
    with_context = _train(tiny_tug, ["joint", "recording_stats"]).real_train_dataset()
    plain = _train(tiny_tug, ["joint"]).real_train_dataset()
    a, b = collect(with_context, features=True), collect(plain, features=True)
    assert a["features"].shape == b["features"].shape == (len(plain), 3 * 51)
    np.testing.assert_array_equal(a["features"], b["features"])


def test_recording_bags_carry_the_same_context(tiny_tug):
    dm = _train(tiny_tug, ["joint", "recording_stats"], unit="recording", max_windows=4)
    bags = dm._datasets["train"]
    assert bags.frame_features == 51
    bag = bags[0]
    n = int(bag["windows"])
    real = bag["mask"][:n]
    context = bag["x"][0][real[0]][0, 51:]
    assert torch.equal(bag["x"][:n][real][:, 51:], context.expand(int(real.sum()), -1))


@pytest.mark.parametrize(
    ("streams", "message"),
    [
        (["recording_stats"], "list at least one of"),
        (["recording_stats", "joint"], "recording_stats must be the last stream"),
    ],
)
def test_bad_stream_lists_are_one_line_config_errors(streams, message):
    with pytest.raises(ConfigError, match=message) as err:
        TUGDataModule(streams=streams)
    assert "\n" not in str(err.value) and "data: streams=" in str(err.value)


def test_predict_rebuilds_the_context_from_the_recording_alone(tiny_tug, tmp_path):
    """`lbp predict` on one recording computes the context from that recording's own
    windows: the same numbers the DataModule gave its windows; a checkpoint trained with
    the stream predicts a recording file."""
    from lbp_motion.cli import main
    from lbp_motion.inference.predict import _window_dataset, predict

    dm = _train(tiny_tug, ["joint", "recording_stats"])
    ds = dm._datasets["train"]
    data = {"layout": "coco17", "window": 30, "stride": 15, "short_recordings": "skip",
            "streams": ["joint", "recording_stats"]}  # fmt: skip
    for r in np.unique(ds.index[:, 0])[:3]:
        one, starts = _window_dataset(ds.keypoints[r], data, f"recording {r}", 30.0)
        np.testing.assert_array_equal(starts, ds.index[ds.index[:, 0] == r, 1])
        first = int(np.flatnonzero(ds.index[:, 0] == r)[0])
        torch.testing.assert_close(one[0]["x"], ds[first]["x"])

    # the quickstart reads [joint, recording_stats]: its checkpoint predicts one file
    argv = ["fit", "--config", "experiments/quickstart.yaml", *TINY_RUN_ARGS, "--data.root", str(tiny_tug),
            "--trainer.max_epochs", "1", "--test_after_fit", "false", "--run.out_dir", str(tmp_path / "runs")]  # fmt: skip
    assert main(argv) == 0
    ckpt = next((tmp_path / "runs").glob("*/version_0/checkpoints/last.ckpt"))
    path = sorted(tiny_tug.glob("*.npz"))[0]
    result = predict(ckpt, path, timeline=False)
    assert result["streams"] == ["joint", "recording_stats"]
    n = len(read_recording(path).keypoints)
    assert len(result["windows"]) == len(range(0, n - 30 + 1, 15))
