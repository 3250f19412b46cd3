"""Shared tiny settings and fixtures: the tiny configs of tests/conf/, one small
synthetic TUG folder and one tiny trained checkpoint per test session, and a helper that
runs the `lbp` command in-process with quiet, fast settings.

The folders of tests/ mirror those of lbp_motion/ (tests/datasets/ tests
lbp_motion/datasets/, ...); tests of the top-level modules (runs.py, atomic.py, ...)
and of the whole (conformance, experiments, docs) are at the top; tests/reliability/
replays hostile inputs end to end. Modules that run `lbp` or a Trainer end to end are
marked ``e2e``: ``pytest -m "not e2e"`` runs the unit tests only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml

# pytest-xdist runs 2 workers on 2 cores: one intra-op thread each, or OpenMP threads
# spin against each other and a training step gets ~20x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")  # never reach a W&B server from tests

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

#: the tests' shared tiny configs (YAML); see each file's header
CONF = Path(__file__).resolve().parent / "conf"


def load_conf(name: str) -> dict:
    """tests/conf/<name>.yaml as a dict."""
    return yaml.safe_load((CONF / f"{name}.yaml").read_text())


def cli_args(overrides: dict) -> list[str]:
    """Dotted-key overrides as `lbp` arguments ``["--key", "value", ...]``: booleans as
    ``true``/``false``, mappings and lists as JSON, other values as text."""
    out = []
    for key, value in overrides.items():
        if isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, (dict, list)):
            text = json.dumps(value)
        else:
            text = str(value)
        out += [f"--{key}", text]
    return out


TINY_TUG = load_conf("tiny_tug")
#: A small transformer and few windows: an end-to-end run takes seconds (tests/conf/tiny_tug.yaml).
TINY_ARGS = cli_args(TINY_TUG["overrides"])
#: The same settings without the transformer's sizes: few windows, two quiet CPU epochs,
#: no W&B, for a TUG config of any model (the quickstart's statistics model).
TINY_RUN_ARGS = cli_args(
    {k: v for k, v in TINY_TUG["overrides"].items() if not k.startswith("model.model.")}
)
#: The same small transformer's keyword arguments, for tests that build one in Python.
TINY_TRANSFORMER = {
    key.rsplit(".", 1)[1]: value
    for key, value in TINY_TUG["overrides"].items()
    if key.startswith("model.model.init_args.")
}
#: Tiny synthetic EmoPain data and one quiet epoch (tests/conf/tiny_emopain.yaml).
EMOPAIN_ARGS = cli_args(load_conf("tiny_emopain")["overrides"])
#: Keyword arguments of a quiet one-device CPU Trainer (tests/conf/tiny_trainer.yaml).
TINY_TRAINER = load_conf("tiny_trainer")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Never download a model in tests: the offline bundle path is used."""
    monkeypatch.setenv("LBP_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_tug(tmp_path_factory) -> Path:
    """9 subjects (3 per class), one recording each, synthetic, seeded."""
    from lbp_motion.datasets.synthetic import generate_tug_dataset

    return generate_tug_dataset(tmp_path_factory.mktemp("tiny_tug"), **TINY_TUG["data"])


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint of the tiny attention model trained one epoch on 9 synthetic subjects."""
    from lbp_motion.cli import main
    from lbp_motion.datasets.synthetic import generate_tug_dataset

    base = tmp_path_factory.mktemp("pose_ckpt")
    root = generate_tug_dataset(base / "data", **TINY_TUG["data"])
    argv = ["fit", "--config", str(ROOT / "experiments" / "tug" / "attention_small.yaml"), *TINY_ARGS, "--data.root", str(root),
            "--trainer.max_epochs", "1", "--test_after_fit", "false", "--run.out_dir", str(base / "runs")]  # fmt: skip
    assert main(argv) == 0
    return next((base / "runs").glob("*/version_0/checkpoints/last.ckpt"))


@pytest.fixture
def run_lbp(tmp_path):
    """Run ``lbp <args>`` in-process with outputs under tmp_path; returns the run dir."""
    from lbp_motion.cli import main

    def run(*args: str, tiny: bool | str = True) -> Path:
        # subcommand [--config FILE], then the tiny settings, then the test's own overrides;
        # tiny="run": the tiny settings without the transformer's sizes (TINY_RUN_ARGS)
        head = 3 if len(args) > 2 and args[1] == "--config" else 1
        tiny_args = TINY_RUN_ARGS if tiny == "run" else TINY_ARGS if tiny else []
        argv = [
            *args[:head],
            *tiny_args,
            *args[head:],
            "--run.out_dir",
            str(tmp_path / "runs"),
        ]
        assert main(argv) == 0
        runs = sorted((tmp_path / "runs").glob("*/version_*"), key=lambda p: p.stat().st_mtime)
        return runs[-1]

    return run


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
