"""A scheduler's view of a stopped ``lbp``: SIGTERM/SIGINT end with status 128 + signal
and one line saying how to resume; last.ckpt stays a valid checkpoint to resume from."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch

from lbp_motion.cli import main
from lbp_motion.trust import load_checkpoint
from tests.conftest import ROOT, TINY_ARGS

pytestmark = pytest.mark.slow


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lbp_motion.cli", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, process: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, (
            f"lbp ended early ({process.returncode}): {process.stderr.read()[-2000:]}"
        )
        if predicate():
            return
        time.sleep(0.2)
    process.kill()
    pytest.fail("timed out waiting for the run to get going")


def _last_line(text: str) -> str:
    return [ln for ln in text.splitlines() if ln.strip()][-1]


@pytest.mark.e2e
def test_sigterm_during_fit_exits_143_and_last_ckpt_resumes(tiny_tug, tmp_path):
    out = tmp_path / "runs"
    args = [
        "fit",
        "--config",
        "experiments/tug/attention_small.yaml",
        "--data.root",
        str(tiny_tug),
        *TINY_ARGS,
        "--trainer.max_epochs",
        "500",
        "--run.out_dir",
        str(out),
    ]
    proc = _start(args)
    last = out / "attention_small" / "version_0" / "checkpoints" / "last.ckpt"
    _wait_for(lambda: last.is_file() and load_checkpoint(last)["epoch"] >= 1, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err
    assert (
        _last_line(err)
        == f"lbp: interrupted by SIGTERM; resume with the same command and --ckpt_path {last}"
    )
    epoch = load_checkpoint(last)["epoch"]  # still a whole, readable checkpoint
    assert not (out / "attention_small" / "version_0" / "metrics.json").exists()

    # resuming continues from that epoch instead of starting again
    assert (
        main(
            [
                *args[:-4],
                "--trainer.max_epochs",
                str(epoch + 2),
                "--test_after_fit",
                "false",
                "--run.out_dir",
                str(out),
                "--ckpt_path",
                str(last),
            ]
        )
        == 0
    )
    resumed = load_checkpoint(out / "attention_small" / "version_1" / "checkpoints" / "last.ckpt")
    assert resumed["epoch"] == epoch + 1
    assert resumed["global_step"] > load_checkpoint(last)["global_step"]
    # the interrupted run's folder is left as it was; the new one holds the best of the whole fit
    assert last.is_file() and load_checkpoint(last)["epoch"] == epoch
    best = list((out / "attention_small" / "version_1" / "checkpoints").glob("best-epoch*.ckpt"))
    assert len(best) == 1


@pytest.mark.e2e
def test_sigint_during_cv_exits_130_and_names_the_run_to_resume(tiny_tug, tmp_path):
    out = tmp_path / "runs"
    proc = _start(
        [
            "cv",
            "--config",
            str(ROOT / "experiments" / "tug" / "attention_small.yaml"),
            "--folds",
            "3",
            "--out_dir",
            str(out),
            "--data.root",
            str(tiny_tug),
            *TINY_ARGS,
            "--trainer.max_epochs",
            "500",
        ]
    )
    _wait_for(lambda: any(out.glob("*/version_*/fold_0/version_0/checkpoints/last.ckpt")), proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    run = next(out.glob("attention_small-cv/version_*"))
    assert proc.returncode == 128 + signal.SIGINT, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert _last_line(err) == (
        f"lbp: interrupted by SIGINT; resume with the same command and --resume {run} "
        "(finished folds are kept)"
    )


def test_interrupted_outside_any_run_says_there_is_nothing_to_resume():
    from lbp_motion.interrupts import Interrupted

    stop = Interrupted(signal.SIGTERM)
    assert stop.status == 143
    assert (
        stop.message()
        == "interrupted by SIGTERM; nothing was saved to resume from: run the same command again"
    )


def _tiny_fit(data, out_dir, name, epochs, *, wandb="disabled", ckpt_path=None):
    """``lbp fit`` of the small attention model on ``data``, no test after it."""
    from lbp_motion import runs

    return runs.fit(
        str(ROOT / "experiments" / "tug" / "attention_small.yaml"),
        args=TINY_ARGS,
        overrides={
            "data.root": data,
            "run.wandb": wandb,
            "run.out_dir": out_dir,
            "run.name": name,
            "trainer.max_epochs": epochs,
        },
        ckpt_path=ckpt_path,
        test_after_fit=False,
    )


@pytest.mark.e2e
def test_a_fit_resumed_from_last_ckpt_is_the_fit_that_was_not_interrupted(tiny_tug, tmp_path):
    """Two epochs in one go, and one epoch then a resume from its last.ckpt for the
    second, give the same weights: the checkpoint carries the random state that the
    shuffling of the training windows and dropout draw from (augmentation draws are
    keyed by epoch and window already)."""

    def fit(name, epochs, ckpt_path=None):
        return _tiny_fit(tiny_tug, tmp_path, name, epochs, ckpt_path=ckpt_path)

    whole = fit("whole", 2)
    first = fit("parts", 1)
    resumed = fit("parts", 2, ckpt_path=first.run_dir / "checkpoints" / "last.ckpt")
    a = load_checkpoint(whole.run_dir / "checkpoints" / "last.ckpt")
    b = load_checkpoint(resumed.run_dir / "checkpoints" / "last.ckpt")
    assert a["epoch"] == b["epoch"] == 1
    assert a["state_dict"].keys() == b["state_dict"].keys()
    different = [
        k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])
    ]
    assert different == []


def test_the_w_and_b_run_to_resume_is_the_newest_online_run_of_the_checkpoints_folder(tmp_path):
    from lbp_motion.runs import wandb_run_to_resume

    last = tmp_path / "version_0" / "checkpoints" / "last.ckpt"
    assert wandb_run_to_resume(None) is None
    assert wandb_run_to_resume(last) is None  # no wandb/ folder
    wandb_dir = tmp_path / "version_0" / "wandb"
    (wandb_dir / "offline-run-20261205_120000-off1").mkdir(parents=True)
    assert wandb_run_to_resume(last) is None  # offline runs are not continued
    (wandb_dir / "run-20261205_100000-old1").mkdir()
    (wandb_dir / "run-20261205_110000-new-2").mkdir()  # the id is all after the time
    (wandb_dir / "run-20261205_130000-file").write_text("not a run folder")
    (wandb_dir / "latest-run").symlink_to(wandb_dir / "run-20261205_100000-old1")
    assert wandb_run_to_resume(last) == "new-2"


@pytest.mark.e2e
def test_a_resumed_online_fit_logs_into_the_w_and_b_run_it_resumes(tiny_tug, tmp_path, monkeypatch):
    """With ``run.wandb: online`` a fit resumed from last.ckpt opens the W&B run of the
    interrupted fit again (its id), so the curves go on in one run. No W&B server here:
    the interrupted fit's online run is a folder of the documented name, and
    WANDB_MODE=offline keeps the resumed run on disk, named by its id. An offline fit
    gets a W&B run of its own."""

    def fit(epochs, wandb, ckpt_path=None):
        return _tiny_fit(tiny_tug, tmp_path, "w", epochs, wandb=wandb, ckpt_path=ckpt_path)

    first = fit(1, "disabled")
    (first.run_dir / "wandb" / "run-20261205_100000-abcd1234").mkdir(parents=True)
    last = first.run_dir / "checkpoints" / "last.ckpt"
    monkeypatch.setenv("WANDB_MODE", "offline")
    online = fit(2, "online", ckpt_path=last)
    assert [p.name.split("-", 3)[3] for p in (online.run_dir / "wandb").glob("offline-run-*")] == [
        "abcd1234"
    ]
    offline = fit(2, "offline", ckpt_path=last)
    ids = [p.name.split("-", 3)[3] for p in (offline.run_dir / "wandb").glob("offline-run-*")]
    assert len(ids) == 1 and ids != ["abcd1234"]
