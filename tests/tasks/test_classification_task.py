from pathlib import Path

import pytest
import torch

from lbp_motion.models import LSTMClassifier
from lbp_motion.tasks import ClassificationTask, load_task
from lbp_motion.tasks.registry import read_checkpoint_info
from lbp_motion.trust import load_checkpoint

SPEC = {"num_features": 12, "classes": ["low", "medium", "high"]}


def test_defaults_follow_spec():
    task = ClassificationTask(data_spec=SPEC)
    conf = task.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["lr"] == 5e-4 and opt.defaults["weight_decay"] == 0.01
    assert isinstance(sched, torch.optim.lr_scheduler.ExponentialLR) and sched.gamma == 0.99
    assert conf["lr_scheduler"]["interval"] == "epoch"
    assert task.model.head[-1].out_features == 3


def test_model_by_factory_and_custom_optimizer():
    task = ClassificationTask(
        model=lambda f, c: LSTMClassifier(f, c, hidden_sizes=(8,)),
        data_spec=SPEC,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
        lr_decay=1.0,
    )
    assert isinstance(task.model, LSTMClassifier)
    assert isinstance(task.configure_optimizers(), torch.optim.SGD)


def test_missing_data_spec_says_how_to_fix():
    try:
        ClassificationTask()
    except ValueError as err:
        assert "data_spec has no 'num_features'" in str(err)
    else:  # pragma: no cover
        raise AssertionError("expected a ValueError")


def test_class_weighted_loss():
    task = ClassificationTask(data_spec=SPEC, class_weighted_loss=True)
    task.class_weight = torch.tensor([1.0, 2.0, 0.5])
    logits, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    expected = torch.nn.functional.cross_entropy(logits, y, weight=torch.tensor([1.0, 2.0, 0.5]))
    torch.testing.assert_close(task.loss(logits, y), expected)


@pytest.mark.e2e
def test_checkpoint_describes_itself_and_loads_alone(run_lbp, tiny_tug):
    run = run_lbp(
        "fit",
        "--config",
        "experiments/tug/attention_small.yaml",
        "--data.root",
        str(tiny_tug),
        "--test_after_fit",
        "false",
    )
    ckpt = next((run / "checkpoints").glob("best-*.ckpt"))
    info = read_checkpoint_info(ckpt)
    assert info["task"] == "lbp_motion.tasks.classification.ClassificationTask"
    data = info["data"]
    assert data["classes"] == ["low", "medium", "high"] and data["layout"] == "coco17"
    assert (data["window"], data["stride"], data["fps"]) == (30, 15, 30.0)
    assert "normalization" in data and info["version"]
    task = load_task(ckpt)
    assert isinstance(task, ClassificationTask) and task.model.feature_dim == 16
    state = load_checkpoint(ckpt)["state_dict"]
    torch.testing.assert_close(
        task.state_dict()["model.head.1.weight"], state["model.head.1.weight"]
    )


@pytest.mark.e2e
def test_recording_metric_as_monitor_picks_the_best_epoch(run_lbp, tiny_tug):
    import csv

    from lbp_motion.evaluation.results import read_metrics

    monitor = "val/recording_mcc"
    # a small CNN that learns within a few epochs on the tiny data, and a third of the
    # subjects for validation: the monitored recording MCC changes from epoch to epoch;
    # early stopping (strict: it fails when the monitor is not logged) watches it too
    run = run_lbp(
        "fit",
        "--config",
        "experiments/tug/attention_small.yaml",
        "--data.root",
        str(tiny_tug),
        "--model.model",
        "lbp_motion.models.CNN1DClassifier",
        "--model.model.init_args.channels",
        "[16, 16]",
        "--model.lr",
        "3e-3",
        "--data.stride",
        "15",
        "--data.batch_size",
        "32",
        "--data.val_fraction",
        "0.34",
        "--data.test_fraction",
        "0.1",
        "--trainer.max_epochs",
        "6",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.accelerator",
        "cpu",
        "--run.wandb",
        "disabled",
        "--run.monitor",
        monitor,
        "--run.early_stopping_patience",
        "5",
        "--test_after_fit",
        "false",
        tiny=False,
    )
    metrics = read_metrics(run)
    assert metrics["monitor"] == monitor
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r.get(monitor)]
    per_epoch = {int(r["epoch"]): float(r[monitor]) for r in rows}
    assert sorted(per_epoch) == list(range(6))  # logged once per epoch, under that exact name
    assert len(set(per_epoch.values())) > 1, "the monitor should move, or the test shows nothing"
    best = max(per_epoch, key=lambda e: (per_epoch[e], -e))  # ties: the first such epoch
    assert metrics["best_epoch"] == best
    assert metrics[monitor] == pytest.approx(per_epoch[best])
    assert Path(metrics["best_checkpoint"]).name == f"best-epoch{best:03d}.ckpt"
