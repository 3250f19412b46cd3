"""Cost of DP-SGD per training step (a measurement, not a test).

For the TUG attention model of experiments/tug_fl/model.yaml (SPEC: 9 blocks, 8 heads,
width 32) on the synthetic three-clinic TUG data (experiments/tug_fl/data.yaml), it times
``--steps`` training steps (after ``--warmup`` steps) of

* ``plain``: the ordinary fit (AdamW, shuffled batches of ``--batch-size`` windows);
* ``dp-window``: the same with ``DifferentialPrivacy(noise_multiplier=1, unit=window)``
  (Poisson batches of ``batch_size`` windows on average, per-sample gradients, clipping,
  noise);
* ``dp-subject``: ``unit=subject`` with ``sample_rate`` such that a batch also holds
  ``batch_size`` windows on average (at most 32 per subject);
* ``plain-again``: ``plain`` once more, to see the machine's drift (shared CPUs).

A step's time runs from ``on_train_batch_start`` to ``on_train_batch_end`` (forward,
backward, clipping, noise, optimiser). Reported: median ms per step and per window, and
the slowdown against ``plain`` per window.

Run: ``python benchmarks/privacy.py [--steps 20] [--threads 1] [--accelerator cpu]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LBP_CACHE", str(REPO / ".cache"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "privacy.json"))
    args = parser.parse_args()

    import lightning.pytorch as pl
    import torch
    import yaml

    from lbp_motion.datamodules.tug import TUGDataModule
    from lbp_motion.models import TransformerClassifier
    from lbp_motion.privacy import DifferentialPrivacy
    from lbp_motion.tasks import ClassificationTask
    from lbp_motion.training_plan import TrainingPlanStrategy

    torch.set_num_threads(args.threads)
    data_cfg = yaml.safe_load((REPO / "experiments/tug_fl/data.yaml").read_text())["init_args"]
    model_cfg = yaml.safe_load((REPO / "experiments/tug_fl/model.yaml").read_text())["init_args"]
    net = model_cfg["model"]["init_args"]

    class StepTimer(pl.Callback):
        def __init__(self):
            self.times, self.sizes = [], []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if args.accelerator != "cpu":
                torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if args.accelerator != "cpu":
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.t)
            self.sizes.append(len(batch["y"]))

    results = {}
    n_windows = None
    for name in ("plain", "dp-window", "dp-subject", "plain-again"):
        pl.seed_everything(0)
        dm = TUGDataModule(**{**data_cfg, "batch_size": args.batch_size})
        dm.setup("fit")
        if n_windows is None:
            n_windows = len(dm._datasets["train"])
            subjects = dm.train_subject_info()["subject"]
            per_subject = min(32, len(subjects) / len(set(subjects)))
        task = ClassificationTask(
            model=lambda f, c: TransformerClassifier(f, c, **net),
            data_spec=dm.spec,
            lr=model_cfg["lr"],
            weight_decay=model_cfg["weight_decay"],
            lr_decay=model_cfg["lr_decay"],
        )
        timer = StepTimer()
        callbacks = [timer]
        if name == "dp-window":
            callbacks.append(DifferentialPrivacy(noise_multiplier=1.0, unit="window"))
        elif name == "dp-subject":
            rate = args.batch_size / per_subject / len(set(subjects))
            callbacks.append(
                DifferentialPrivacy(
                    noise_multiplier=1.0,
                    unit="subject",
                    sample_rate=min(1.0, rate),
                    max_windows_per_subject=32,
                )
            )
        trainer = pl.Trainer(
            max_epochs=-1,
            max_steps=args.steps + args.warmup,
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            accelerator=args.accelerator,
            devices=1,
            callbacks=callbacks,
            strategy=TrainingPlanStrategy(),  # applies the DP callback's Poisson loader (the "plain" runs: a no-op)
        )
        trainer.fit(task, datamodule=dm)
        times, sizes = timer.times[args.warmup :], timer.sizes[args.warmup :]
        results[name] = {
            "ms_per_step": 1000 * statistics.median(times),
            "ms_per_window": 1000 * sum(times) / max(sum(sizes), 1),
            "mean_batch": sum(sizes) / len(sizes),
            "steps": len(times),
        }
    for name in results:
        plain = (results["plain"]["ms_per_window"] + results["plain-again"]["ms_per_window"]) / 2
        results[name]["slowdown_per_window"] = results[name]["ms_per_window"] / plain
    out = {
        "threads": args.threads,
        "accelerator": args.accelerator,
        "train_windows": n_windows,
        "batch_size": args.batch_size,
        "model": net,
        "results": results,
    }
    print(json.dumps(out, indent=1))
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
