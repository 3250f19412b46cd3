"""The run lists of experiments/emopain/sweeps/ (PLAAN's comparisons) name existing
configs with valid overrides; the segment-length ablation is a W&B sweep per model
(experiments/sweeps/emopain_segment_length*.yaml, also parsed by tests/pipelines/test_sweep.py)."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LISTS = sorted((ROOT / "experiments" / "emopain" / "sweeps").glob("*.yaml"))


def load(path):
    doc = yaml.safe_load(path.read_text())
    assert doc["kind"] == "run_list" and doc["runs"]
    return doc["runs"]


@pytest.mark.parametrize("path", LISTS, ids=lambda p: p.stem)
def test_every_run_names_a_config_and_overrides(path):
    runs = load(path)
    names = [r["name"] for r in runs]
    assert len(set(names)) == len(names)
    for r in runs:
        assert (ROOT / r["config"]).is_file(), r["config"]
        assert all(isinstance(a, str) for a in r["overrides"])


def test_the_lists_and_sweeps_cover_the_issue():
    from lbp_motion.pipelines.sweep import grid_points, load_sweep

    assert {p.stem for p in LISTS} >= {
        "network_comparison",
        "sota_pain",
        "sota_protective",
        "cascade_comparison",
    }
    bases = set()
    for stem in (
        "emopain_segment_length",
        "emopain_segment_length_lstm_dnn",
        "emopain_segment_length_anomaly",
    ):
        spec = load_sweep(ROOT / "experiments" / "sweeps" / f"{stem}.yaml")
        key = "data.init_args.segment_length"
        assert [p[key] for p in grid_points(spec)] == list(range(100, 1001, 100))
        bases.add(spec.lbp_args[2])
    assert bases == {
        "experiments/emopain/pain_lstm.yaml",
        "experiments/emopain/pain_lstm_dnn.yaml",
        "experiments/emopain/anomaly/pain_loss.yaml",
    }


def test_the_step_matched_segment_lengths_train_for_the_same_number_of_steps(capsys):
    """Each entry of segment_length_steps.yaml, as `lbp sweep` starts it, takes about the
    optimiser steps of the published 100 epochs at the default 180 frames (within 2%),
    counted on the synthetic data it runs on."""
    import math

    from lbp_motion.cli import main
    from lbp_motion.datamodules.emopain import EmoPainDataModule
    from lbp_motion.pipelines.sweep import command_for, load_sweep, run_parameters

    def steps(data: dict, epochs: int) -> int:
        dm = EmoPainDataModule(**{k: v for k, v in data.items() if k != "num_workers"})
        dm.setup("fit")
        return epochs * math.ceil(len(dm.train_dataloader().dataset) / dm.batch_size)

    spec = load_sweep(ROOT / "experiments" / "emopain" / "sweeps" / "segment_length_steps.yaml")
    reference = steps({"task": "pain", "features": "both", "batch_size": 32}, 100)
    lengths = []
    for k in range(len(spec.runs)):
        with pytest.raises(SystemExit) as exit_:
            main([*command_for(spec, run_parameters(spec, k)), "--print_config"])
        assert exit_.value.code == 0
        config = yaml.safe_load(capsys.readouterr().out)
        data = config["data"]["init_args"]
        lengths.append(data["segment_length"])
        taken = steps(data, config["trainer"]["max_epochs"])
        assert abs(taken - reference) <= 0.02 * reference, (data["segment_length"], taken)
    assert lengths == [100, 200, 300, 500, 1000]
