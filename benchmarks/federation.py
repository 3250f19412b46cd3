"""Overhead of federation in the FedAvg strategy (a measurement, not a test).

Definitions, per round (one training epoch), measured in one run:

* ``local`` -- the clients' local training: the sum over all training batches of the
  time from ``on_train_batch_start`` to ``on_train_batch_end`` (forward, backward,
  optimiser step), minus the strategy's client switches that happen inside them;
* ``federation`` -- what federating adds: client switches (snapshot of the finished
  client's weights, loading the global weights, resetting optimiser state, seeding)
  plus the aggregation (n_k-weighted average and loading the result);
* ``round`` -- wall time from the start of the training epoch to the end of the
  aggregation: local training + federation + data loading between batches. Validation
  and checkpointing come after and are reported apart (``val_and_ckpt``): a centralised
  run pays them too.

``overhead = (round - local) / round`` (target < 10%), and ``federation / round``.
Round 0 is a warm-up and is not counted.

Run: ``python benchmarks/federation.py [--rounds 3] [--threads N] [--out FILE]``.
Uses experiments/tug_fedavg.yaml (SPEC's model: 9 blocks, 8 heads; three clinics of
the synthetic TUG data) on the CPU, or on a GPU with ``--accelerator gpu``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LBP_CACHE", str(REPO / ".cache"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "federation.json"))
    args = parser.parse_args()

    import lightning.pytorch as pl
    import torch

    from lbp_motion.federated import FedAvgStrategy
    from lbp_motion.runs import LbpCLI, checkpoint_callbacks

    torch.set_num_threads(args.threads)
    timers = {"switch": 0.0, "aggregate": 0.0}

    class TimedFedAvg(FedAvgStrategy):
        def _switch_to(self, client):
            t = time.perf_counter()
            super()._switch_to(client)
            timers["switch"] += time.perf_counter() - t

        def finish_round(self):
            t = time.perf_counter()
            pending = bool(self._kept) or self._client is not None
            super().finish_round()
            if pending:
                timers["aggregate"] += time.perf_counter() - t
                timers["round_end"] = time.perf_counter()

    class Clock(pl.Callback):
        def __init__(self):
            self.rows = []

        def on_train_epoch_start(self, trainer, pl_module):
            timers.update(switch=0.0, aggregate=0.0, batches=0.0, start=time.perf_counter())

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self._switch_before = timers["switch"]
            self._t = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            timers["batches"] += (
                time.perf_counter() - self._t - (timers["switch"] - self._switch_before)
            )

        def on_train_epoch_end(self, trainer, pl_module):
            end = time.perf_counter()
            round_time = timers["round_end"] - timers["start"]
            fed = timers["switch"] + timers["aggregate"]
            self.rows.append(
                {
                    "round": trainer.current_epoch,
                    "round_s": round_time,
                    "local_s": timers["batches"],
                    "federation_s": fed,
                    "val_and_ckpt_s": end - timers["round_end"],
                    "overhead": (round_time - timers["batches"]) / round_time,
                    "federation_share": fed / round_time,
                }
            )

    clock = Clock()
    # model and data exactly as the config builds them; the Trainer built here so the
    # strategy can be the timed subclass
    cli = LbpCLI(args=["--config", str(REPO / "experiments" / "tug_fedavg.yaml")], run=False)
    strategy = TimedFedAvg(num_clients=3, partition="site", local_epochs=1, seed=0)
    ckpt_dir = REPO / ".cache" / "bench-runs" / "federation"
    trainer = pl.Trainer(
        max_epochs=args.rounds,
        accelerator=args.accelerator,
        devices=1,
        strategy=strategy,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock, *checkpoint_callbacks(ckpt_dir, "val/f1_macro", "max")],
        default_root_dir=str(ckpt_dir),
        num_sanity_val_steps=0,
    )
    trainer.fit(cli.model, datamodule=cli.datamodule)
    rows = clock.rows[1:] or clock.rows
    summary = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "round"}
    n_k = strategy.num_examples
    result = {
        "device": args.accelerator,
        "threads": args.threads,
        "rounds_measured": len(rows),
        "clients_n_k": n_k,
        "median": summary,
        "rounds": clock.rows,
        "torch": torch.__version__,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(
        f"clients n_k = {n_k}; median over {len(rows)} rounds ({args.accelerator}, {args.threads} thread(s)):"
    )
    for key, value in summary.items():
        print(f"  {key:18s} {value:.4f}" if "s" not in key[-2:] else f"  {key:18s} {value:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
