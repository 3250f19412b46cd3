"""Shared tiny fixtures: one small synthetic TUG folder per test session, and a helper
that runs the `lbp` command in-process with quiet, fast settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

# pytest-xdist runs 2 workers on 2 cores: one intra-op thread each, or OpenMP threads
# spin against each other and a training step gets ~20x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")  # never reach a W&B server from tests

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

#: A small transformer and few windows: an end-to-end run takes seconds.
TINY_ARGS = [
    "--model.model.init_args.d_model", "16",
    "--model.model.init_args.num_layers", "1",
    "--model.model.init_args.num_heads", "2",
    "--data.stride", "15",
    "--data.batch_size", "32",
    "--trainer.max_epochs", "2",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.accelerator", "cpu",
    "--run.wandb", "disabled",
]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_tug(tmp_path_factory) -> Path:
    """9 subjects (3 per class), one recording each, synthetic, seeded."""
    from lbp_motion.datasets.synthetic import generate_tug_dataset

    return generate_tug_dataset(
        tmp_path_factory.mktemp("tiny_tug"), num_subjects=9, recordings_per_subject=1, seed=0
    )


@pytest.fixture
def run_lbp(tmp_path):
    """Run ``lbp <args>`` in-process with outputs under tmp_path; returns the run dir."""
    from lbp_motion.cli import main

    def run(*args: str, tiny: bool = True) -> Path:
        # subcommand [--config FILE], then the tiny settings, then the test's own overrides
        head = 3 if len(args) > 2 and args[1] == "--config" else 1
        argv = [
            *args[:head],
            *(TINY_ARGS if tiny else []),
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
