"""Every experiment config parses as is, and the EmoPain configs run end to end."""

import json
from pathlib import Path

import pytest
import yaml

from lbp_motion.cli import main

ROOT = Path(__file__).resolve().parents[1]
# component files included by other configs (trainer: trainer.yaml, data: data.yaml, model: model.yaml)
PARTS = {"trainer.yaml", "data.yaml", "model.yaml"}
CONFIGS = sorted(p for p in (ROOT / "experiments").rglob("*.yaml") if p.name not in PARTS and "sweeps" not in p.parts)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "experiments")))
def test_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_.value.code == 0
    parsed = yaml.safe_load(capsys.readouterr().out)
    assert parsed["model"]["class_path"] and parsed["data"]["class_path"]


TINY_EMOPAIN = [
    "--data.init_args.synthetic",
    json.dumps({"num_train_patients": 2, "num_train_controls": 2, "num_val_patients": 1, "num_val_controls": 1,
                "frames_per_file": 900}),
    "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu",
    "--run.wandb", "disabled",
]


@pytest.mark.slow
def test_emopain_config_fits_and_cross_validates(tmp_path):
    config = "experiments/emopain/protective_lstm_dnn.yaml"
    small = ["--model.init_args.model.init_args.hidden_sizes", "[16]",
             "--model.init_args.model.init_args.dense_sizes", "[16]", *TINY_EMOPAIN]
    assert main(["fit", "--config", config, *small, "--data.init_args.balance", "smote",
                 "--run.out_dir", str(tmp_path)]) == 0
    metrics = json.loads(next(tmp_path.glob("emopain-protective-lstm_dnn/version_0/metrics.json")).read_text())
    for key in ("test/accuracy", "test/mcc", "test/f1/protective", "test/f1/non_protective", "val/exercise_accuracy"):
        assert key in metrics
    assert main(["cv", "--config", config, "--folds", "2", "--out_dir", str(tmp_path / "cv"), *small]) == 0
    summary = json.loads(next((tmp_path / "cv").glob("*/version_0/summary.json")).read_text())
    assert summary["folds"] == 2 and "test/mcc_mean" in summary and "pooled/mcc" in summary
