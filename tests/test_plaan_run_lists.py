"""The run lists of experiments/emopain/sweeps/ (PLAAN's comparisons and the
segment-length ablation): every entry names an existing config with valid overrides."""

from pathlib import Path

import pytest
import yaml

from lbp_motion.cli import main

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


def test_the_lists_cover_the_issue():
    assert {p.stem for p in LISTS} >= {"network_comparison", "sota_pain", "sota_protective",
                                       "cascade_comparison", "segment_length"}
    lengths = {int(r["overrides"][1]) for r in load(ROOT / "experiments/emopain/sweeps/segment_length.yaml")}
    assert lengths == set(range(100, 1001, 100))


@pytest.mark.parametrize("index", [0, 1, 19])
def test_segment_length_overrides_parse(index, capsys):
    run = load(ROOT / "experiments/emopain/sweeps/segment_length.yaml")[index]
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(ROOT / run["config"]), *run["overrides"], "--print_config"])
    assert exit_.value.code == 0
    parsed = yaml.safe_load(capsys.readouterr().out)
    assert parsed["data"]["init_args"]["segment_length"] == int(run["overrides"][1])
