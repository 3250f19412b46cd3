"""Every experiment config parses as is, and the EmoPain configs run end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from lbp_motion.cli import main

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
# component files included by other configs (trainer: trainer.yaml, data: data.yaml, model: model.yaml)
PARTS = {"trainer.yaml", "data.yaml", "model.yaml"}
# overlays on a whole TUG config: `--config experiments/quickstart.yaml --config <overlay>`
OVERLAYS = {"nuisance.yaml", "streams.yaml"}
CONFIGS = sorted(
    p
    for p in (ROOT / "experiments").rglob("*.yaml")
    if p.name not in PARTS | OVERLAYS and "sweeps" not in p.parts
)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "experiments")))
def test_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_.value.code == 0
    parsed = yaml.safe_load(capsys.readouterr().out)
    assert parsed["model"]["class_path"] and parsed["data"]["class_path"]


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlay_changes_only_what_it_names_on_top_of_the_quickstart(overlay, capsys):
    def resolved(*configs):
        with pytest.raises(SystemExit) as exit_:
            main(["fit", *(a for c in configs for a in ("--config", c)), "--print_config"])
        assert exit_.value.code == 0
        return yaml.safe_load(capsys.readouterr().out)

    base = resolved("experiments/quickstart.yaml")
    path = f"experiments/tug/{overlay}"
    merged = resolved("experiments/quickstart.yaml", path)
    named = yaml.safe_load(open(ROOT / path))
    for key, value in named["data"]["init_args"].items():
        assert merged["data"]["init_args"][key] == value, key
    # everything it does not name is the quickstart's: the model, training, augmentation
    assert merged["model"] == base["model"] and merged["trainer"] == base["trainer"]
    assert merged["data"]["init_args"]["augment"] == base["data"]["init_args"]["augment"]


TINY_EMOPAIN = [
    "--data.init_args.synthetic",
    json.dumps(
        {
            "num_train_patients": 2,
            "num_train_controls": 2,
            "num_val_patients": 1,
            "num_val_controls": 1,
            "frames_per_file": 900,
        }
    ),
    "--trainer.max_epochs",
    "1",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.accelerator",
    "cpu",
    "--run.wandb",
    "disabled",
]


@pytest.mark.slow
def test_emopain_config_fits_and_cross_validates(tmp_path):
    config = "experiments/emopain/protective_lstm_dnn.yaml"
    small = [
        "--model.init_args.model.init_args.hidden_sizes",
        "[16]",
        "--model.init_args.model.init_args.dense_sizes",
        "[16]",
        *TINY_EMOPAIN,
    ]
    assert (
        main(
            [
                "fit",
                "--config",
                config,
                *small,
                "--data.init_args.balance",
                "smote",
                "--run.out_dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    metrics = json.loads(
        next(tmp_path.glob("emopain-protective-lstm_dnn/version_0/metrics.json")).read_text()
    )
    for key in (
        "test/accuracy",
        "test/mcc",
        "test/f1/protective",
        "test/f1/non_protective",
        "val/exercise_accuracy",
    ):
        assert key in metrics
    # seed 8: each fold trains on a patient with protective windows (P003 of this tiny data
    # has none, and a fold whose training split has one class is refused)
    assert (
        main(
            [
                "cv",
                "--config",
                config,
                "--folds",
                "2",
                "--seed",
                "8",
                "--out_dir",
                str(tmp_path / "cv"),
                *small,
            ]
        )
        == 0
    )
    summary = json.loads(next((tmp_path / "cv").glob("*/version_0/summary.json")).read_text())
    assert summary["folds"] == 2 and "test/mcc_mean" in summary and "pooled/mcc" in summary
    # segment labels change within a recording: no recording-statistics baseline, said why
    assert summary["baselines"] == ["window_stats", "majority"]
    assert any("recording statistics baseline skipped" in n for n in summary["baseline_notes"])


def write_foreign_emopain(root: Path, rng) -> Path:
    """A challenge-layout folder written with plain scipy.io.savemat, as MATLAB would
    save it (extra variables beside `data`), not by lbp_motion's writer."""
    from scipy.io import savemat

    for split, subjects in (
        ("train", ["P101", "P102", "C201", "C202"]),
        ("validation", ["P103", "C203"]),
    ):
        (root / split).mkdir(parents=True)
        for subject in subjects:
            for level in "ND":
                t = 600
                data = np.zeros((t, 78))
                data[:, 0:66] = np.cumsum(rng.normal(0, 0.01, (t, 66)), axis=0) + rng.normal(
                    0, 1, 66
                )
                data[:, 66:70] = np.abs(rng.normal(0, 1, (t, 4)))
                data[:, 70] = np.repeat(rng.integers(0, 9, t // 100), 100)
                patient = subject.startswith("P")
                data[:, 71] = np.repeat(rng.choice([-1, 1, 2], t // 100), 100) if patient else 0
                protective = (rng.uniform(size=t // 50) < (0.4 if patient else 0.05)).repeat(50)
                data[:, 72] = protective
                data[protective, 73] = 1
                data[:, 0:66] *= np.where(protective, 0.5, 1.0)[:, None]  # guarded: smaller motion
                savemat(
                    root / split / f"{subject}{level}.mat", {"data": data, "subject_info": subject}
                )
    return root


@pytest.mark.slow
def test_a_foreign_challenge_folder_fits_and_cross_validates(tmp_path):
    root = write_foreign_emopain(tmp_path / "challenge", np.random.default_rng(0))
    config = "experiments/emopain/protective_lstm.yaml"
    small = [
        "--data.root",
        str(root),
        "--model.init_args.model.init_args.hidden_sizes",
        "[16]",
        "--trainer.max_epochs",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.accelerator",
        "cpu",
        "--run.wandb",
        "disabled",
    ]
    assert main(["fit", "--config", config, *small, "--run.out_dir", str(tmp_path / "fit")]) == 0
    metrics = json.loads(next((tmp_path / "fit").glob("*/version_0/metrics.json")).read_text())
    assert "test/f1/protective" in metrics and "test/mcc" in metrics
    assert (
        main(["cv", "--config", config, "--folds", "3", "--out_dir", str(tmp_path / "cv"), *small])
        == 0
    )
    run = next((tmp_path / "cv").glob("*/version_0"))
    summary = json.loads((run / "summary.json").read_text())
    assert (
        summary["folds"] == 3 and "test/accuracy_mean" in summary and "pooled/accuracy" in summary
    )
    assert all((run / f"fold_{i}" / "metrics.json").is_file() for i in range(3))


TUG_FL_LISTS = sorted((ROOT / "experiments" / "tug_fl" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("run_list", TUG_FL_LISTS, ids=lambda p: p.name)
def test_every_entry_of_the_federated_comparisons_parses_with_its_overrides(run_list, capsys):
    """Each row of issue 15's comparisons, as `lbp sweep` would start it (seed 0); the
    nuisance list is the plain one on data with subject-level nuisance."""
    from lbp_motion.pipelines.sweep import command_for, load_sweep, run_parameters

    spec = load_sweep(run_list)
    plain = load_sweep(ROOT / "experiments" / "tug_fl" / "sweeps" / "comparison.yaml")
    assert [r["name"] for r in spec.runs] == [r["name"] for r in plain.runs]
    for k, entry in enumerate(spec.runs):
        if entry["name"].endswith(("seed1", "seed2")):
            continue
        with pytest.raises(SystemExit) as exit_:
            main([*command_for(spec, run_parameters(spec, k)), "--print_config"])
        assert exit_.value.code == 0, entry["name"]
        data = yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]
        assert data["synthetic"]["sites"] == 3, entry["name"]
        if run_list.name == "comparison_nuisance.yaml":
            assert data["synthetic"]["nuisance"] == 1.0, entry["name"]
