"""A run list entry that reads an earlier entry's run directory (``{run_dir:NAME}``: a
stage-1 checkpoint, a model to fine-tune) waits for it and gets its path; with
``--jobs N`` too (PLAAN's cascade from a separately trained protective stage)."""

import json

import pytest
import torch
import yaml

from lbp_motion.errors import ConfigError
from lbp_motion.pipelines.sweep import command_for, run_parameters, run_sweep, with_run_dirs
from lbp_motion.pipelines.sweep_spec import parse_sweep
from tests.conftest import TINY_ARGS


def _list(runs, **extra):
    return {"kind": "run_list", "runs": runs, **extra}


def test_a_run_can_read_earlier_runs_only():
    with pytest.raises(ConfigError, match=r"runs\[0\]\.overrides: \{run_dir:b\} names no run listed before") as err:  # fmt: skip
        parse_sweep(
            _list(
                [
                    {"name": "a", "config": "x.yaml", "overrides": ["--p", "{run_dir:b}/c"]},
                    {"name": "b", "config": "x.yaml"},
                ]
            ),
            "list.yaml",
        )
    assert "list.yaml" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"\{run_dir:nope\}"):
        parse_sweep(_list([{"name": "a", "config": "x.yaml", "overrides": ["{run_dir:nope}"]}]))


def test_run_dirs_are_filled_in_from_finished_runs_and_follow_seeds():
    spec = parse_sweep(
        _list(
            [
                {"name": "stage1", "config": "s.yaml"},
                {
                    "name": "stage2",
                    "config": "t.yaml",
                    "overrides": ["--ckpt", "{run_dir:stage1}/last.ckpt"],
                },
            ],  # fmt: skip
            seeds=[0, 1],
        )
    )
    names = [r["name"] for r in spec.runs]
    assert names == ["stage1-seed0", "stage1-seed1", "stage2-seed0", "stage2-seed1"]
    assert spec.runs[3]["needs"] == ["stage1-seed1"]  # the same seed's stage 1
    runs = [
        {"name": "stage1-seed0", "status": "finished", "run_dir": "/r/s0"},
        {"name": "stage1-seed1", "status": "failed", "run_dir": None},
    ]
    params, missing = with_run_dirs(spec, 2, run_parameters(spec, 2), runs)
    assert missing is None
    assert command_for(spec, params)[-4:] == ["--ckpt", "/r/s0/last.ckpt", "--seed_everything", "0"]  # fmt: skip
    assert with_run_dirs(spec, 3, run_parameters(spec, 3), runs)[1] == "stage1-seed1"


@pytest.mark.e2e
@pytest.mark.parametrize("jobs", [1, 2])
def test_lbp_sweep_starts_a_run_from_an_earlier_runs_checkpoint(tiny_tug, tmp_path, jobs):
    """The second run resumes the first one's last.ckpt: with --jobs 2 it waits for the
    first to finish (else there is no checkpoint to read and it fails); when the first
    failed, the second is not run."""
    run_list = tmp_path / "chain.yaml"
    ckpt = "{run_dir:first}/checkpoints/last.ckpt"
    run_list.write_text(
        yaml.safe_dump(
            _list(
                [
                    {
                        "name": "first",
                        "config": "experiments/tug/attention_small.yaml",
                        "overrides": [],
                    },
                    {
                        "name": "second",
                        "config": "experiments/tug/attention_small.yaml",
                        "overrides": ["--ckpt_path", ckpt, "--trainer.max_epochs", "2"],
                    },
                ]  # fmt: skip
            )
        )
    )
    common = ["--data.root", str(tiny_tug), *TINY_ARGS, "--trainer.max_epochs", "1"]
    notes = []
    out = run_sweep(
        run_list, out_dir=tmp_path / "runs", overrides=common, jobs=jobs, log=notes.append
    )
    runs = json.loads((out / "state.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["finished", "finished"], notes
    first_dir = runs[0]["run_dir"]
    assert f"{first_dir}/checkpoints/last.ckpt" in runs[1]["params"]["overrides"]
    # it went on from the first run's checkpoint: one more epoch, twice the steps
    first, second = (
        torch.load(f"{r['run_dir']}/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
        for r in runs
    )
    assert (first["epoch"], second["epoch"]) == (0, 1)
    assert second["global_step"] == 2 * first["global_step"] > 0

    # the first run fails (no data there): the second is recorded failed, never started
    bad = tmp_path / "bad.yaml"
    doc = yaml.safe_load(run_list.read_text())
    doc["runs"][0]["overrides"] = ["--data.root", str(tmp_path / "missing")]
    bad.write_text(yaml.safe_dump(doc))
    notes.clear()
    out = run_sweep(bad, out_dir=tmp_path / "bad", overrides=common, jobs=jobs, log=notes.append)
    runs = json.loads((out / "state.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["failed", "failed"]
    assert any("second not run: it reads the run directory of first, which is failed" in n for n in notes)  # fmt: skip
    assert not (out / "second").exists()
