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

Second part, ``scale`` (issue 16): the time of one round for K = 1, 2, 4, 8, 16 clients,
sequential (``vectorize: false``) against vectorised (``vectorize: true``), with the same
model, the same data per client (``--per_client`` training windows of the synthetic TUG
data, the same windows at every client) and batch size, E = 1, no validation; the
median over rounds after a warm-up round. ``ratio_to_1`` is a mode's round time at K
over its time at K = 1 (target on a GPU: vectorised, K = 8 at most 2); on a GPU also the
peak device memory per client of the vectorised round.

Third part, ``flower``: the same federation (experiments/tug_fedavg.yaml's model, E = 1,
K sites of generated synthetic TUG data with 6 subjects per site, stride 15) in process
(FedAvgStrategy, sequential) and on Flower's simulation engine (``lbp federate
simulate``: Ray workers, messages, a Trainer per site and round), once with all CPUs per
ClientApp (Ray runs one client at a time, as the in-process loop does: the ratio of the
median round times is Flower's overhead) and once with one CPU each (clients in
parallel). Flower's round times come from its rounds.csv. ``--only
overhead|scale|flower`` runs one part.
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
    parser.add_argument("--only", choices=["overhead", "scale", "flower"], default=None)
    parser.add_argument("--clients", default="1,2,4,8,16", help="K values of the scale part")
    parser.add_argument("--per_client", type=int, default=64, help="training windows per client")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "federation.json"))
    args = parser.parse_args()
    result = {}
    if args.only in (None, "overhead"):
        result["overhead"] = overhead(args)
    if args.only in (None, "scale"):
        result["scale"] = scale(args)
    if args.only in (None, "flower"):
        result["flower"] = flower(args)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


def overhead(args) -> dict:
    """The first part: what federating adds to a round of three clinics."""
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
    print(
        f"clients n_k = {n_k}; median over {len(rows)} rounds ({args.accelerator}, {args.threads} thread(s)):"
    )
    for key, value in summary.items():
        print(f"  {key:18s} {value:.4f}" if "s" not in key[-2:] else f"  {key:18s} {value:.2f} s")
    return result


def scale(args) -> dict:
    """The second part: round time against the number of clients K, sequential and
    vectorised (see the module docstring)."""
    import lightning.pytorch as pl
    import torch

    from lbp_motion.federated import FedAvgStrategy
    from lbp_motion.runs import LbpCLI

    torch.set_num_threads(args.threads)
    cli = LbpCLI(args=["--config", str(REPO / "experiments" / "tug_fedavg.yaml")], run=False)
    cli.datamodule.setup("fit")
    source = cli.datamodule.real_train_dataset()
    windows = [source[i] for i in range(args.per_client)]
    template = {k: v.clone() for k, v in cli.model.state_dict().items()}
    gpu = args.accelerator == "gpu"

    class Clients(pl.LightningDataModule):
        """K clients holding the same ``per_client`` windows, each client one subject."""

        def __init__(self, k: int) -> None:
            super().__init__()
            self.k = k
            self.samples = [dict(w, recording=torch.tensor(c)) for c in range(k) for w in windows]

        def train_dataloader(self):
            return torch.utils.data.DataLoader(self.samples, batch_size=args.batch_size)

        def train_subject_info(self):
            return {"subject": [f"s{i // len(windows)}" for i in range(len(self.samples))]}

    class Clock(pl.Callback):
        def __init__(self):
            self.times, self.peaks = [], []

        def on_train_epoch_start(self, trainer, pl_module):
            if gpu:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            self.t = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):  # after the aggregation
            if gpu:
                torch.cuda.synchronize()
                self.peaks.append(torch.cuda.max_memory_allocated())
            self.times.append(time.perf_counter() - self.t)

    rows = []
    for k in [int(v) for v in args.clients.split(",")]:
        for vectorize in (False, True):
            model = cli.model
            model.load_state_dict(template)
            groups = [[f"s{c}"] for c in range(k)]
            strategy = FedAvgStrategy(
                num_clients=k, partition="groups", subject_groups=groups, vectorize=vectorize
            )
            clock = Clock()
            base = torch.cuda.memory_allocated() if gpu else 0
            pl.Trainer(
                max_epochs=args.rounds,
                accelerator=args.accelerator,
                devices=1,
                strategy=strategy,
                logger=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                enable_checkpointing=False,
                limit_val_batches=0,
                num_sanity_val_steps=0,
                callbacks=[clock],
                default_root_dir=str(REPO / ".cache" / "bench-runs" / "federation-scale"),
            ).fit(model, datamodule=Clients(k))
            measured = clock.times[1:] or clock.times
            row = {
                "clients": k,
                "mode": "vectorised" if vectorize else "sequential",
                "round_s": statistics.median(measured),
            }
            if gpu:
                row["peak_mib_per_client"] = (max(clock.peaks) - base) / k / 2**20
            rows.append(row)
            print(f"  K={k:3d} {row['mode']:11s} round {row['round_s']:.3f} s", flush=True)
    for row in rows:
        first = next(
            r for r in rows if r["mode"] == row["mode"] and r["clients"] == rows[0]["clients"]
        )
        row["ratio_to_1"] = row["round_s"] / first["round_s"]
    for row in rows:
        if row["mode"] == "vectorised":
            seq = next(
                r for r in rows if r["mode"] == "sequential" and r["clients"] == row["clients"]
            )
            row["speedup_over_sequential"] = seq["round_s"] / row["round_s"]
    params = sum(p.numel() for p in cli.model.parameters())
    print(
        f"round time against K ({args.accelerator}, {args.threads} thread(s), {params} parameters):"
    )
    print("  K  mode         round_s  ratio_to_1  speedup")
    for row in rows:
        speed = row.get("speedup_over_sequential")
        print(
            f"  {row['clients']:2d} {row['mode']:11s} {row['round_s']:8.3f} {row['ratio_to_1']:10.2f}"
            + (f" {speed:8.2f}" if speed else "")
        )
    return {
        "device": args.accelerator,
        "threads": args.threads,
        "per_client": args.per_client,
        "batch_size": args.batch_size,
        "parameters": params,
        "rows": rows,
        "torch": torch.__version__,
    }


def _RoundClock():
    """A callback that times each round: training epoch start to its end, after the
    aggregation (FedAvg's round hooks run first)."""
    import lightning.pytorch as pl

    class RoundClock(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module):
            self.t = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            self.times.append(time.perf_counter() - self.t)

    return RoundClock()


def flower(args) -> dict:
    """The third part: Flower's simulation engine against the in-process simulation."""
    import csv

    import lightning.pytorch as pl
    import torch

    from lbp_motion.datasets.synthetic import generate_tug_dataset
    from lbp_motion.federated import FedAvgStrategy
    from lbp_motion.federated.flower.simulation import run_simulation
    from lbp_motion.runs import LbpCLI

    torch.set_num_threads(args.threads)
    config = str(REPO / "experiments" / "tug_fedavg.yaml")
    work = REPO / ".cache" / "bench-runs" / "federation-flower"
    rows = []
    for k in [int(v) for v in args.clients.split(",")]:
        data = work / f"data-{k}"
        if not (data / "labels.csv").is_file():
            generate_tug_dataset(
                data, num_subjects=6 * k, recordings_per_subject=1, sites=k, seed=0
            )
        overrides = ["--data.root", str(data), "--data.stride", "15",
                     "--trainer.strategy.init_args.local_epochs", "1",
                     "--trainer.strategy.init_args.num_clients", str(k),
                     "--trainer.max_epochs", str(args.rounds), "--trainer.accelerator", args.accelerator,
                     "--trainer.enable_progress_bar", "false", "--run.wandb", "disabled",
                     "--run.out_dir", str(work / f"runs-{k}")]  # fmt: skip
        cli = LbpCLI(args=["--config", config, *overrides], run=False)
        clock = _RoundClock()

        strategy = FedAvgStrategy(num_clients=k, partition="site", local_epochs=1, seed=0)
        pl.Trainer(
            max_epochs=args.rounds, accelerator=args.accelerator, devices=1, strategy=strategy,
            logger=False, enable_progress_bar=False, enable_model_summary=False,
            enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0,
            callbacks=[clock], default_root_dir=str(work),
        ).fit(cli.model, datamodule=cli.datamodule)  # fmt: skip
        inprocess = statistics.median(clock.times[1:] or clock.times)
        row = {"clients": k, "n_k": strategy.num_examples, "inprocess_round_s": inprocess}
        # all CPUs per ClientApp: Ray runs one at a time, as the in-process loop does (the
        # ratio is Flower's overhead); one CPU each: as many clients at once as CPUs
        for mode, cpus in (("serial", float(os.cpu_count() or 1)), ("parallel", 1.0)):
            t = time.perf_counter()
            run_dir = run_simulation(config, overrides, k, client_cpus=cpus)
            row[f"flower_{mode}_total_s"] = time.perf_counter() - t
            with open(run_dir / "rounds.csv", newline="") as fh:
                flower_times = [float(r["round_seconds"]) for r in csv.DictReader(fh)]
            row[f"flower_{mode}_round_s"] = statistics.median(flower_times[1:] or flower_times)
            row[f"flower_{mode}_over_inprocess"] = row[f"flower_{mode}_round_s"] / inprocess
        rows.append(row)
        print(f"  K={k:3d} in-process {inprocess:.2f} s  Flower {row['flower_serial_round_s']:.2f} s "
              f"(one client at a time), {row['flower_parallel_round_s']:.2f} s (one per CPU)", flush=True)  # fmt: skip
    print(
        f"Flower's simulation engine against in-process FedAvg ({args.accelerator}, {os.cpu_count()} CPUs):"
    )
    print("  K  in-process_s  flower_serial_s  ratio  flower_parallel_s  ratio")
    for r in rows:
        print(f"  {r['clients']:2d} {r['inprocess_round_s']:12.2f} {r['flower_serial_round_s']:16.2f} "
              f"{r['flower_serial_over_inprocess']:6.2f} {r['flower_parallel_round_s']:18.2f} "
              f"{r['flower_parallel_over_inprocess']:6.2f}")  # fmt: skip
    return {"device": args.accelerator, "threads": args.threads, "rows": rows}


if __name__ == "__main__":
    sys.exit(main())
