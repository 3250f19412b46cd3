"""Every registered task runs through fit (with its final test), test and predict on
tiny data from its own conformance_config (anomalib-style registry conformance), and
through a federated fit without any change to the task."""

import csv

import pytest
import yaml

from lbp_motion.cli import main
from lbp_motion.evaluation.results import read_metrics
from lbp_motion.tasks import registered_tasks

pytestmark = pytest.mark.e2e

FAST_TRAINER = {
    "max_epochs": 1,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "accelerator": "cpu",
    "limit_train_batches": 4,
}


def _write_config(name, tmp_path, **trainer):
    config = registered_tasks()[name].conformance_config()
    config.setdefault("trainer", {}).update({**FAST_TRAINER, **trainer})
    config["run"] = {"out_dir": str(tmp_path / "runs"), "wandb": "disabled", "name": name}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("name", sorted(registered_tasks()))
def test_task_runs_fit_test_predict(name, tmp_path):
    path = _write_config(name, tmp_path)
    assert main(["fit", "--config", str(path)]) == 0
    fitted = tmp_path / "runs" / name / "version_0"
    metrics = read_metrics(fitted)
    assert any(k.startswith("test/") for k in metrics), "fit should end by testing"
    ckpt = metrics["best_checkpoint"]

    assert main(["test", "--config", str(path), "--ckpt_path", ckpt]) == 0
    tested = read_metrics(tmp_path / "runs" / name / "version_1")
    test_keys = [k for k in metrics if k.startswith("test/")]
    assert {k: tested[k] for k in test_keys} == pytest.approx({k: metrics[k] for k in test_keys})

    assert main(["predict", "--config", str(path), "--ckpt_path", ckpt]) == 0
    rows = list(
        csv.DictReader(open(tmp_path / "runs" / name / "version_2" / "recording_predictions.csv"))
    )
    assert rows and all(r["predicted"] for r in rows)


@pytest.mark.parametrize("name", sorted(registered_tasks()))
def test_task_trains_federated_unchanged(name, tmp_path):
    strategy = {
        "class_path": "lbp_motion.federated.FedAvgStrategy",
        "init_args": {"num_clients": 2, "partition": "iid", "seed": 0},
    }
    path = _write_config(name, tmp_path, max_epochs=2, limit_train_batches=None, strategy=strategy)
    assert main(["fit", "--config", str(path), "--test_after_fit", "false"]) == 0
    run = tmp_path / "runs" / name / "version_0"
    rounds = list(csv.DictReader(open(run / "rounds.csv")))
    assert [r["round"] for r in rounds] == ["0", "1"] and all(r["clients"] == "2" for r in rounds)
    assert "val/f1_macro" in read_metrics(run)
