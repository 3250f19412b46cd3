"""Every registered task runs through fit (with its final test), test and predict on
tiny data from its own conformance_config (anomalib-style registry conformance)."""

import csv

import pytest
import yaml

from lbp_motion.cli import main
from lbp_motion.results import read_metrics
from lbp_motion.tasks import registered_tasks

FAST_TRAINER = {
    "max_epochs": 1,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "accelerator": "cpu",
    "limit_train_batches": 4,
}


@pytest.mark.parametrize("name", sorted(registered_tasks()))
def test_task_runs_fit_test_predict(name, tmp_path):
    cls = registered_tasks()[name]
    config = cls.conformance_config()
    config.setdefault("trainer", {}).update(FAST_TRAINER)
    config["run"] = {"out_dir": str(tmp_path / "runs"), "wandb": "disabled", "name": name}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))

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
    rows = list(csv.DictReader(open(tmp_path / "runs" / name / "version_2" / "recording_predictions.csv")))
    assert rows and all(r["predicted"] for r in rows)
