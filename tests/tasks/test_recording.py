"""RecordingTask and recording bags (data.unit: recording): shapes, masks, pooling that
ignores padding, and the task through lbp fit/test/predict and lbp cv."""

import csv
import json

import numpy as np
import pytest
import torch

from lbp_motion.cli import main
from lbp_motion.datamodules.tug import TUGDataModule
from lbp_motion.errors import ConfigError
from lbp_motion.evaluation.results import read_metrics
from lbp_motion.models import TransformerClassifier
from lbp_motion.tasks import ClassificationTask
from lbp_motion.tasks.recording import RecordingClassifier, RecordingTask
from tests.conftest import TINY_ARGS

#: conftest's tiny settings; bags of at most 8 windows, 4 recordings a batch
TINY_RECORDING = [*TINY_ARGS, "--data.max_windows", "8", "--data.batch_size", "4"]


def _bags(root, **kw):
    dm = TUGDataModule(root=str(root), unit="recording", stride=15, **kw)
    dm.setup("fit")
    return dm


def test_bags_hold_the_windows_of_one_recording_padded_and_masked(tiny_tug):
    windows = TUGDataModule(root=str(tiny_tug), stride=15)
    windows.setup("fit")
    dm = _bags(tiny_tug, max_windows=64)
    bags, flat = dm._datasets["val"], windows._datasets["val"]
    assert len(bags) == len(np.unique(flat.index[:, 0])) and len(bags) > 0
    for k in range(len(bags)):
        item = bags[k]
        rows = np.flatnonzero(flat.index[:, 0] == bags.index[k, 0])
        n = len(rows)
        assert item["x"].shape == (64, 30, 51) and item["mask"].shape == (64, 30)
        assert int(item["windows"]) == n and item["window_mask"].tolist() == [True] * n + [
            False
        ] * (64 - n)
        assert int(item["start"]) == 0 and int(item["recording"]) == int(
            flat[int(rows[0])]["recording"]
        )
        assert int(item["y"]) == int(flat[int(rows[0])]["y"])
        for j, i in enumerate(rows):  # the real windows are the window dataset's, in order
            torch.testing.assert_close(item["x"][j], flat[int(i)]["x"])
            assert torch.equal(item["mask"][j], flat[int(i)]["mask"])
        assert not item["mask"][n:].any() and not item["x"][n:].any()
    assert bags.window_labels().tolist() == [int(bags[k]["y"]) for k in range(len(bags))]
    # batches of bags with the default collate
    batch = next(iter(dm.val_dataloader()))
    assert batch["x"].shape[1:] == (64, 30, 51) and batch["window_mask"].shape[1] == 64


def test_long_recordings_are_read_at_evenly_spaced_windows(tiny_tug):
    dm = _bags(tiny_tug, max_windows=4)
    bags = dm._datasets["train"]
    k = max(range(len(bags)), key=lambda i: len(bags.rows[i]))
    rows = bags.rows[k]
    assert len(rows) > 4
    chosen = bags.chosen_windows(k)
    assert chosen[0] == rows[0] and chosen[-1] == rows[-1] and len(chosen) == 4
    starts = bags.windows.index[chosen, 1]
    assert np.all(np.diff(starts) > 0)
    assert int(bags[k]["windows"]) == 4 and bags[k]["window_mask"].all()


def test_bad_unit_settings_are_one_config_error(tiny_tug):
    with pytest.raises(ConfigError, match="data: unit='bag'; expected window or recording"):
        TUGDataModule(unit="bag")
    with pytest.raises(ConfigError, match="data: max_windows=0"):
        TUGDataModule(unit="recording", max_windows=0)
    with pytest.raises(ConfigError, match="balance='smote' resamples windows"):
        TUGDataModule(unit="recording", balance="smote")
    spec = _bags(tiny_tug).spec
    assert spec["unit"] == "recording" and spec["max_windows"] == 32
    assert "unit" not in TUGDataModule().spec  # window checkpoints describe themselves as before
    with pytest.raises(
        ConfigError, match="ClassificationTask reads windows but data.unit is 'recording'"
    ):
        ClassificationTask(data_spec=spec)
    with pytest.raises(
        ConfigError, match="RecordingTask reads recordings but data.unit is 'window'"
    ):
        RecordingTask(data_spec={"num_features": 51, "classes": ["a", "b"]})
    with pytest.raises(ConfigError, match="pooling='max'"):
        RecordingTask(data_spec=spec, pooling="max")


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_pooling_ignores_padded_windows(pooling):
    torch.manual_seed(0)
    encoder = TransformerClassifier(6, 3, d_model=8, num_layers=1, num_heads=2, dropout=0.0)
    model = RecordingClassifier(encoder, 3, pooling=pooling, attention_dim=4).eval()
    x = torch.randn(2, 3, 10, 6)
    mask = torch.ones(2, 3, 10, dtype=torch.bool)
    mask[1, 2, 7:] = False
    window_mask = torch.tensor([[True, True, True], [True, True, False]])
    garbage = torch.full(
        (2, 4, 10, 6), 1e3
    )  # padded windows with wild values and all frames "real"
    x_pad = torch.cat([x, garbage], dim=1)
    mask_pad = torch.cat([mask, torch.ones(2, 4, 10, dtype=torch.bool)], dim=1)
    window_mask_pad = torch.cat([window_mask, torch.zeros(2, 4, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        out = model(x, mask, window_mask)
        torch.testing.assert_close(model(x_pad, mask_pad, window_mask_pad), out)
        # the second bag is its two real windows alone
        torch.testing.assert_close(model(x[1:, :2], mask[1:, :2]), out[1:])
        # ... and a real window does count
        x2 = x.clone()
        x2[0, 1] += 1.0
        assert not torch.allclose(model(x2, mask, window_mask)[0], out[0])
        if pooling == "mean":  # the mean of the encoder's window embeddings
            h = encoder.features(x[0], mask[0]).mean(dim=0)
            torch.testing.assert_close(model.head(h.unsqueeze(0)), out[:1])


def _config(tmp_path):
    import yaml

    config = RecordingTask.conformance_config()
    config["trainer"] = {
        "max_epochs": 2,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "accelerator": "cpu",
    }
    config["run"] = {"out_dir": str(tmp_path / "runs"), "wandb": "disabled", "name": "rec"}
    path = tmp_path / "rec.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.e2e
def test_recording_task_fit_test_predict_through_the_cli(tmp_path, tiny_tug):
    path = _config(tmp_path)
    root = ["--data.root", str(tiny_tug), "--run.monitor", "val/recording_f1_macro"]
    assert main(["fit", "--config", str(path), *root, "--model.pooling", "attention"]) == 0
    fitted = tmp_path / "runs" / "rec" / "version_0"
    metrics = read_metrics(fitted)
    for stage in ("val", "test"):
        for name in (
            "recording_accuracy",
            "recording_f1_macro",
            "recording_mcc",
            "accuracy",
            "f1_macro",
            "mcc",
        ):
            assert f"{stage}/{name}" in metrics
    # a sample is a recording: window and recording accuracy are the same number
    assert metrics["test/accuracy"] == pytest.approx(metrics["test/recording_accuracy"])
    assert (
        metrics["monitor"] == "val/recording_f1_macro" and (fitted / "confusion_test.csv").is_file()
    )
    assert (
        main(
            [
                "predict",
                "--config",
                str(path),
                *root,
                "--model.pooling",
                "attention",
                "--ckpt_path",
                metrics["best_checkpoint"],
            ]
        )
        == 0
    )
    predicted = tmp_path / "runs" / "rec" / "version_1"
    rows = list(csv.DictReader(open(predicted / "predictions.csv")))
    recs = list(csv.DictReader(open(predicted / "recording_predictions.csv")))
    assert rows and len(rows) == len({r["recording"] for r in rows}) == len(
        recs
    )  # one row per recording
    assert all(r["start"] == "0" and r["label"] for r in rows)
    assert all(1 <= int(r["windows"]) <= 8 for r in recs) and any(
        int(r["windows"]) > 1 for r in recs
    )
    by_name = {r["recording"]: r for r in rows}
    for r in recs:
        assert r["predicted"] == by_name[r["recording"]]["predicted"]


@pytest.mark.e2e
@pytest.mark.slow
def test_lbp_cv_runs_the_recording_model(tmp_path, tiny_tug):
    args = [
        "cv",
        "--config",
        "experiments/tug/recording.yaml",
        "--folds",
        "3",
        "--out_dir",
        str(tmp_path),
        "--data.root",
        str(tiny_tug),
        *TINY_RECORDING,
        "--trainer.max_epochs",
        "1",
    ]
    assert main(args) == 0
    summary = json.loads((tmp_path / "recording-cv" / "version_0" / "summary.json").read_text())
    assert summary["folds"] == 3 and 0 <= summary["pooled/accuracy"] <= 1
    assert summary["pooled/accuracy"] == pytest.approx(summary["pooled/recording_accuracy"])
    assert "test/recording_f1_macro_mean" in summary
    # beside the window baselines, fitted on every window of the same recordings, and
    # compared at recording level only (the model's window metrics are recording metrics)
    assert summary["baselines"] == ["window_stats", "recording_stats", "majority"]
    for b in ("window_stats", "recording_stats"):
        assert f"diff/{b}/recording_accuracy_ci" in summary and f"diff/{b}/accuracy" not in summary
    assert any("recording level only" in note for note in summary["baseline_notes"])
    assert (
        "model - window statistics (logistic regression) (recording_f1_macro)"
        in (tmp_path / "recording-cv" / "version_0" / "summary.md").read_text()
    )


def test_baselines_of_a_recording_model_are_those_of_the_window_model_on_the_same_split(tiny_tug):
    from lbp_motion.evaluation.baselines import fold_baselines

    windows = TUGDataModule(root=str(tiny_tug), stride=15)
    windows.setup("fit")
    bags = _bags(tiny_tug, max_windows=2)  # the bags read 2 windows; the baselines all of them
    assert fold_baselines(bags, ["window_stats", "majority"]) == fold_baselines(
        windows, ["window_stats", "majority"]
    )


def test_augmentation_reaches_every_window_of_a_training_bag(tiny_tug):
    from lbp_motion.transforms.augment import AugmentedDataset

    dm = _bags(tiny_tug, max_windows=4, augment=[{"name": "rotate", "degrees": 20}])
    train = dm._datasets["train"]
    assert isinstance(train, AugmentedDataset)
    plain, a, b = train.base[0], train[(0, 0)], train[(0, 0)]
    torch.testing.assert_close(a["x"], b["x"])  # seeded by (epoch, item)
    n = int(plain["windows"])
    assert all(not torch.allclose(a["x"][j], plain["x"][j]) for j in range(n))
    assert not torch.allclose(train[(1, 0)]["x"], a["x"])
    assert train.base.windows._rng is None  # no generator left behind for evaluation reads
