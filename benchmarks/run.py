"""lbp_motion benchmarks: measurements, not tests (nothing here passes or fails).

Run from the repository root::

    python benchmarks/run.py [--quick] [--out FILE]     # or: make bench

Prints a table and writes JSON (default ``benchmarks/results.json``). Both benchmarks use
the default synthetic TUG data (``ensure_synthetic_tug()``, as the TUG configs do),
generated into ``$LBP_CACHE`` (default here: ``<repo>/.cache``) before anything is
measured. See docs/benchmarks.md.

1. ``train_throughput`` -- :func:`bench_train_throughput`: windows/s of ``lbp fit`` with
   experiments/tug/attention_small.yaml (the small attention model) against a bare PyTorch loop on the same model, data,
   optimiser and schedule. Target: ratio >= 0.9.
2. ``datamodule_memory`` -- :func:`bench_datamodule_memory`: memory the TUGDataModule
   holds after ``setup("fit")`` and one batch, against the bytes of its per-recording
   keypoint arrays. Target: ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import io
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ATTENTION_SMALL = REPO / "experiments" / "tug" / "attention_small.yaml"
os.environ.setdefault("LBP_CACHE", str(REPO / ".cache"))

import lightning.pytorch as pl  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

import lbp_motion  # noqa: E402
from lbp_motion.cli import main as lbp_main  # noqa: E402
from lbp_motion.datamodules.tug import TUGDataModule  # noqa: E402
from lbp_motion.datasets.synthetic import ensure_synthetic_tug  # noqa: E402
from lbp_motion.models import TransformerClassifier  # noqa: E402

TARGET_TRAIN_RATIO = 0.9
TARGET_MEMORY_RATIO = 1.5
#: /proc/pressure/cpu "some avg10" (%) above which a run is flagged as contended.
CONTENDED_PRESSURE = 10.0


def _attention_small() -> dict[str, Any]:
    with open(ATTENTION_SMALL) as fh:
        return yaml.safe_load(fh)


def _data_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    return dict(cfg["data"]["init_args"])


# ----------------------------------------------------------------------------------------
# 1. training throughput
# ----------------------------------------------------------------------------------------
class EpochTimer(pl.Callback):
    """Timestamps of ``lbp fit``'s training epochs (``time.perf_counter``).

    Per epoch: ``start`` (on_train_epoch_start), ``batches_end`` (this callback's
    on_train_epoch_end, which Lightning calls after the last batch and before the
    task's own on_train_epoch_end), ``windows`` (samples seen) and ``steps`` (the
    durations from on_train_batch_start to on_train_batch_end: forward, loss, logging,
    metric update, backward, optimiser step; data fetching excluded). ``train_end``
    (on_train_end) closes the last epoch. Instances register themselves in
    ``EpochTimer.instances`` so the benchmark can read them after ``lbp`` returns.
    """

    instances: list[EpochTimer] = []

    def __init__(self) -> None:
        self.epochs: list[dict[str, Any]] = []
        self.train_end: float | None = None
        self.train_end_cpu: float | None = None
        self.threads: int | None = None
        self.parameters: int | None = None
        self._t0 = 0.0
        EpochTimer.instances.append(self)

    def on_train_start(self, trainer, pl_module) -> None:
        self.parameters = sum(p.numel() for p in pl_module.parameters())

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.threads = torch.get_num_threads()
        self.epochs.append(
            {"start": time.perf_counter(), "cpu": time.process_time(), "windows": 0, "steps": []}
        )

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        e = self.epochs[-1]
        e["steps"].append(time.perf_counter() - self._t0)
        e["windows"] += len(batch["y"])

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs[-1]["batches_end"] = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self.train_end = time.perf_counter()
        self.train_end_cpu = time.process_time()


def _cpu_pressure() -> float | None:
    """``some avg10`` of /proc/pressure/cpu: % of the last 10 s in which some task
    waited for a CPU (other work on a shared machine); None where unavailable."""
    try:
        with open("/proc/pressure/cpu") as fh:
            return float(fh.readline().split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return None


def _summarise(
    epochs: list[dict[str, Any]], end: float, end_cpu: float, warmup: int
) -> dict[str, Any]:
    """Throughput over the epochs after ``warmup``: ``epoch`` spans each epoch from its
    start to the next one's (all per-epoch work: batches, epoch-end metrics, logging,
    checkpoint, LR step); ``batches`` stops at the last batch of each epoch; ``steps``
    are the optimisation steps alone, the rest of the batch loop is data fetching and
    per-batch hooks."""
    starts = [e["start"] for e in epochs] + [end]
    cpus = [e["cpu"] for e in epochs] + [end_cpu]
    timed = range(warmup, len(epochs))
    windows = sum(epochs[i]["windows"] for i in timed)
    span = sum(starts[i + 1] - starts[i] for i in timed)
    cpu = sum(cpus[i + 1] - cpus[i] for i in timed)
    batches = sum(epochs[i]["batches_end"] - epochs[i]["start"] for i in timed)
    steps = [s for i in timed for s in epochs[i]["steps"]]
    return {
        "windows": windows,
        "epoch_seconds": span,
        "batch_loop_seconds": batches,
        "step_seconds": sum(steps),
        "between_steps_seconds": batches - sum(steps),
        "epoch_end_seconds": span - batches,
        "cpu_seconds": cpu,
        "windows_per_s": windows / span,
        "windows_per_s_batches_only": windows / batches,
        "windows_per_cpu_s": windows / cpu,
        "median_step_ms": 1000 * statistics.median(steps),
        "min_step_ms": 1000 * min(steps),
        "p10_step_ms": 1000 * statistics.quantiles(steps, n=10)[0],
    }


def run_bare(
    data_kwargs: dict[str, Any],
    model_kwargs: dict[str, Any],
    lr: float,
    weight_decay: float,
    lr_decay: float,
    epochs: int,
    warmup: int,
) -> dict[str, Any]:
    """The reference: a plain PyTorch loop, same model, data, optimiser and schedule."""
    torch.manual_seed(0)
    dm = TUGDataModule(**data_kwargs)
    dm.setup("fit")
    model = TransformerClassifier(dm.spec["num_features"], len(dm.classes), **model_kwargs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=lr_decay)
    model.train()
    log: list[dict[str, Any]] = []
    for _ in range(warmup + epochs):
        e = {"start": time.perf_counter(), "cpu": time.process_time(), "windows": 0, "steps": []}
        log.append(e)
        for batch in dm.train_dataloader():
            t0 = time.perf_counter()
            logits = model(batch["x"], batch["mask"])
            loss = torch.nn.functional.cross_entropy(logits, batch["y"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            e["steps"].append(time.perf_counter() - t0)
            e["windows"] += len(batch["y"])
        e["batches_end"] = time.perf_counter()
        scheduler.step()
    end, end_cpu = time.perf_counter(), time.process_time()
    out = _summarise(log, end, end_cpu, warmup)
    out["threads"] = torch.get_num_threads()
    out["parameters"] = sum(p.numel() for p in model.parameters())
    return out


def run_lbp(epochs: int, warmup: int, out_dir: str, d_model: int) -> dict[str, Any]:
    """``lbp fit --config experiments/tug/attention_small.yaml`` in-process, timed by EpochTimer."""
    EpochTimer.instances.clear()
    timer_path = f"{EpochTimer.__module__}.{EpochTimer.__qualname__}"
    args = [
        "fit",
        "--config",
        str(ATTENTION_SMALL),
        "--trainer.max_epochs",
        str(warmup + epochs),
        "--trainer.accelerator",
        "cpu",  # the bare loop runs on the CPU too
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.limit_val_batches",
        "0",
        "--model.init_args.model.init_args.d_model",
        str(d_model),
        f"--trainer.callbacks+={timer_path}",
        "--run.wandb",
        "disabled",
        "--run.out_dir",
        out_dir,
        "--test_after_fit",
        "false",
    ]
    with contextlib.redirect_stdout(io.StringIO()):  # "Results: <run dir>"
        rc = lbp_main(args)
    if rc != 0 or len(EpochTimer.instances) != 1:
        raise RuntimeError(f"lbp fit failed (rc={rc}, timers={len(EpochTimer.instances)})")
    timer = EpochTimer.instances[0]
    out = _summarise(timer.epochs, timer.train_end, timer.train_end_cpu, warmup)
    out["threads"] = timer.threads
    out["parameters"] = timer.parameters
    return out


def bench_train_throughput(
    reps: int, epochs: int, warmup: int, d_model: int | None = None
) -> dict[str, Any]:
    """Training throughput ratio = lbp windows/s / bare windows/s (target >= 0.9).

    *lbp*: ``lbp_motion.cli.main(["fit", "--config", "experiments/tug/attention_small.yaml", ...])``
    with W&B disabled, no progress bar, no validation (``limit_val_batches 0``), no test
    after fit, CPU, ``warmup + epochs`` epochs; everything else as in that config
    (CSV logging every 10 steps, train metrics, ModelCheckpoint ``save_last``).
    *bare*: the same TransformerClassifier (the config's sizes, unless ``d_model``
    overrides its width for both sides),
    iterating a TUGDataModule built with the config's data arguments (same windows,
    batch size 64, shuffled), cross-entropy, AdamW (lr 5e-4, weight decay 0.01),
    ExponentialLR (0.99) stepped per epoch. Both models' parameter counts are checked
    to be equal.

    Time: wall clock of the training epochs after ``warmup`` epochs, each epoch from
    its start to the next epoch's start (for the last: to on_train_end / after the LR
    step), so process start, config parsing, data reading and the warm-up epoch are
    excluded for both. Throughput = training windows seen / that time. Runs alternate
    (bare, lbp, lbp, bare, ...) in one process with the same torch thread count; the
    ratio is median(lbp) / median(bare) over ``reps`` runs each.

    Also reported, to judge noise on a shared machine: the ratio over the batch loop
    only (epoch-end work excluded), of the best run of each, per CPU second
    (``time.process_time``), the per-repetition (paired) ratios, the median and the
    fastest time of one optimisation step (data fetching excluded), each run's split
    into steps / between steps (data fetching, hooks) / epoch end, and
    /proc/pressure/cpu ``some avg10`` before and after each run (high values: other
    processes competed for the CPUs; runs above 10 % are counted as contended).
    """
    cfg = _attention_small()
    task = cfg["model"]["init_args"]
    model_kwargs = dict(task["model"]["init_args"])
    if d_model is not None:
        model_kwargs["d_model"] = d_model
    data_kwargs = _data_kwargs(cfg)
    bare_runs: list[dict[str, Any]] = []
    lbp_runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lbp-bench-") as out_dir:
        for r in range(reps):
            order = ("bare", "lbp") if r % 2 == 0 else ("lbp", "bare")
            for kind in order:
                gc.collect()
                pressure = _cpu_pressure()
                if kind == "bare":
                    res = run_bare(
                        data_kwargs,
                        model_kwargs,
                        task["lr"],
                        task["weight_decay"],
                        task["lr_decay"],
                        epochs,
                        warmup,
                    )
                    bare_runs.append(res)
                else:
                    res = run_lbp(epochs, warmup, out_dir, model_kwargs["d_model"])
                    lbp_runs.append(res)
                res["cpu_pressure_before"], res["cpu_pressure_after"] = pressure, _cpu_pressure()
                print(
                    f"  rep {r + 1}/{reps} {kind:>4}: {res['windows_per_s']:6.1f} windows/s, "
                    f"{res['epoch_seconds']:5.1f} s = steps {res['step_seconds']:5.1f} + between steps "
                    f"{res['between_steps_seconds']:4.1f} + epoch end {res['epoch_end_seconds']:4.2f}; "
                    f"median step {res['median_step_ms']:5.1f} ms; cpu pressure "
                    f"{res['cpu_pressure_before']} -> {res['cpu_pressure_after']}",
                    flush=True,
                )

    if {r["parameters"] for r in bare_runs} != {r["parameters"] for r in lbp_runs}:
        raise RuntimeError("lbp and bare models differ in size")

    def med(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    ratio = med(lbp_runs, "windows_per_s") / med(bare_runs, "windows_per_s")
    contended = sum(
        1
        for r in bare_runs + lbp_runs
        if max(r["cpu_pressure_before"] or 0.0, r["cpu_pressure_after"] or 0.0) > CONTENDED_PRESSURE
    )
    return {
        "ratio": ratio,
        "target": f">= {TARGET_TRAIN_RATIO}",
        "meets_target": ratio >= TARGET_TRAIN_RATIO,
        "lbp_windows_per_s": med(lbp_runs, "windows_per_s"),
        "bare_windows_per_s": med(bare_runs, "windows_per_s"),
        "ratio_batches_only": med(lbp_runs, "windows_per_s_batches_only")
        / med(bare_runs, "windows_per_s_batches_only"),
        "ratio_best_of": max(r["windows_per_s"] for r in lbp_runs)
        / max(r["windows_per_s"] for r in bare_runs),
        "ratio_cpu_time": med(lbp_runs, "windows_per_cpu_s") / med(bare_runs, "windows_per_cpu_s"),
        "lbp_median_step_ms": med(lbp_runs, "median_step_ms"),
        "bare_median_step_ms": med(bare_runs, "median_step_ms"),
        "lbp_min_step_ms": min(r["min_step_ms"] for r in lbp_runs),
        "bare_min_step_ms": min(r["min_step_ms"] for r in bare_runs),
        "contended_runs": contended,
        "paired_ratio_median": statistics.median(
            a["windows_per_s"] / b["windows_per_s"]
            for a, b in zip(lbp_runs, bare_runs, strict=True)
        ),
        "paired_ratios": [
            a["windows_per_s"] / b["windows_per_s"]
            for a, b in zip(lbp_runs, bare_runs, strict=True)
        ],
        "settings": {
            "reps": reps,
            "timed_epochs": epochs,
            "warmup_epochs": warmup,
            "train_windows_per_epoch": bare_runs[0]["windows"] // epochs,
            "batch_size": data_kwargs["batch_size"],
            "model": model_kwargs,
            "parameters": bare_runs[0]["parameters"],
            "torch_threads": {"bare": bare_runs[0]["threads"], "lbp": lbp_runs[0]["threads"]},
        },
        "runs": {"bare": bare_runs, "lbp": lbp_runs},
    }


# ----------------------------------------------------------------------------------------
# 2. DataModule memory
# ----------------------------------------------------------------------------------------
def bench_datamodule_memory() -> dict[str, Any]:
    """Memory ratio = traced bytes held by a TUGDataModule / bytes of its keypoints
    (target <= 1.5).

    A first DataModule is set up, batched once and dropped, so that imports and
    one-off caches are not counted. Then, with ``tracemalloc`` running (numpy reports
    its array buffers to it), a DataModule with the small attention model's data arguments is
    constructed, ``setup("fit")`` is called and one training batch is built; the
    numerator is the growth of traced memory from before construction to that point
    (everything still referenced: keypoint arrays, window index maps, scales, labels,
    names, Python objects). The denominator is the total ``nbytes`` of the
    per-recording keypoint arrays (float32 (T, 17, 3)). Tensors that torch allocates
    itself (the collated batch) are invisible to tracemalloc; their size is reported
    separately. Also reported: the window index maps' bytes (windows are (recording,
    start) rows, not copies) and what materialised float32 windows would take.
    """
    kwargs = _data_kwargs(_attention_small())
    warm = TUGDataModule(**kwargs)
    warm.setup("fit")
    next(iter(warm.train_dataloader()))
    del warm
    gc.collect()

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        dm = TUGDataModule(**kwargs)
        dm.setup("fit")
        after_setup = tracemalloc.get_traced_memory()[0]
        batch = next(iter(dm.train_dataloader()))
        gc.collect()
        after_batch, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    datasets = {s: dm._datasets[s] for s in ("train", "val", "test", "predict")}
    keypoints = datasets["train"].keypoints
    shared = all(ds.keypoints is keypoints for ds in datasets.values())
    kp_bytes = int(sum(k.nbytes for k in keypoints))
    index_bytes = {s: int(ds.index.nbytes) for s, ds in datasets.items()}
    n_windows = {s: len(ds) for s, ds in datasets.items()}
    features = dm.spec["num_features"]
    materialised = 4 * dm.window * features * sum(n_windows[s] for s in ("train", "val", "test"))
    batch_bytes = int(sum(t.nbytes for t in batch.values()))
    growth = after_batch - before
    ratio = growth / kp_bytes
    return {
        "ratio": ratio,
        "target": f"<= {TARGET_MEMORY_RATIO}",
        "meets_target": ratio <= TARGET_MEMORY_RATIO,
        "traced_growth_bytes": growth,
        "traced_after_setup_bytes": after_setup - before,
        "traced_peak_bytes": peak - before,
        "keypoint_bytes": kp_bytes,
        "recordings": len(keypoints),
        "keypoint_arrays_shared_by_splits": shared,
        "window_index_bytes": index_bytes,
        "window_index_bytes_total": sum(index_bytes.values()),
        "windows": n_windows,
        "materialised_windows_bytes_train_val_test": materialised,
        "batch_tensor_bytes_untraced": batch_bytes,
        "ratio_including_batch": (growth + batch_bytes) / kp_bytes,
    }


# ----------------------------------------------------------------------------------------
def _mib(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"


def print_table(results: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str, str]] = []
    tr = results.get("train_throughput")
    if tr:
        rows += [
            (
                "train throughput ratio (lbp / bare)",
                f"{tr['ratio']:.3f}",
                tr["target"],
                "ok" if tr["meets_target"] else "BELOW",
            ),
            ("  model", ", ".join(f"{k} {v}" for k, v in tr["settings"]["model"].items()), "", ""),
            ("  lbp fit windows/s", f"{tr['lbp_windows_per_s']:.1f}", "", ""),
            ("  bare loop windows/s", f"{tr['bare_windows_per_s']:.1f}", "", ""),
            ("  ratio, batch loop only", f"{tr['ratio_batches_only']:.3f}", "", ""),
            ("  ratio, best run of each", f"{tr['ratio_best_of']:.3f}", "", ""),
            ("  ratio, per CPU second", f"{tr['ratio_cpu_time']:.3f}", "", ""),
            (
                "  median step ms (lbp / bare)",
                f"{tr['lbp_median_step_ms']:.1f} / {tr['bare_median_step_ms']:.1f}",
                "",
                "",
            ),
            (
                "  fastest step ms (lbp / bare)",
                f"{tr['lbp_min_step_ms']:.1f} / {tr['bare_min_step_ms']:.1f}",
                "",
                "",
            ),
            (
                "  paired ratios (median)",
                ", ".join(f"{r:.3f}" for r in tr["paired_ratios"])
                + f" ({tr['paired_ratio_median']:.3f})",
                "",
                "",
            ),
            (
                "  runs with cpu pressure > 10 %",
                f"{tr['contended_runs']} of {2 * len(tr['paired_ratios'])}",
                "",
                "NOISY" if tr["contended_runs"] else "",
            ),
        ]
    mem = results.get("datamodule_memory")
    if mem:
        rows += [
            (
                "datamodule memory ratio (traced / keypoints)",
                f"{mem['ratio']:.3f}",
                mem["target"],
                "ok" if mem["meets_target"] else "ABOVE",
            ),
            ("  traced growth after setup + 1 batch", _mib(mem["traced_growth_bytes"]), "", ""),
            (
                "  keypoint arrays",
                f"{_mib(mem['keypoint_bytes'])} ({mem['recordings']} recordings)",
                "",
                "",
            ),
            ("  window index maps (all splits)", _mib(mem["window_index_bytes_total"]), "", ""),
            (
                "  materialised windows would be",
                _mib(mem["materialised_windows_bytes_train_val_test"]),
                "",
                "",
            ),
            ("  traced peak during setup", _mib(mem["traced_peak_bytes"]), "", ""),
        ]
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    header = ("benchmark", "value", "target", "")
    w = [max(a, len(b)) for a, b in zip(w, header, strict=True)]
    line = "  ".join("-" * n for n in w)
    print(line)
    print("  ".join(h.ljust(n) for h, n in zip(header, w, strict=True)))
    print(line)
    for r in rows:
        print("  ".join(c.ljust(n) for c, n in zip(r, w, strict=True)))
    print(line)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one repetition of each training run")
    p.add_argument(
        "--out", default=str(REPO / "benchmarks" / "results.json"), help="JSON results file"
    )
    p.add_argument(
        "--reps", type=int, default=None, help="repetitions of each run (default 5, --quick 1)"
    )
    p.add_argument("--epochs", type=int, default=1, help="timed epochs per run (default 1)")
    p.add_argument("--warmup", type=int, default=1, help="untimed first epochs per run (default 1)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    p.add_argument(
        "--d-model",
        type=int,
        default=None,
        help="model width for both sides (default: the small attention model's)",
    )
    p.add_argument("--only", choices=["train", "memory"], default=None, help="run one benchmark")
    args = p.parse_args(argv)
    reps = args.reps or (1 if args.quick else 5)

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*could not find the monitored key.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    data_root = ensure_synthetic_tug()  # generated (once) outside every measurement
    results: dict[str, Any] = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "lightning": pl.__version__,
            "numpy": np.__version__,
            "lbp_motion": lbp_motion.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "data": str(data_root),
        "quick": args.quick,
    }
    if args.only in (None, "memory"):
        print("datamodule_memory ...", flush=True)
        results["datamodule_memory"] = bench_datamodule_memory()
    if args.only in (None, "train"):
        print(
            f"train_throughput: {reps} x (bare, lbp), {args.warmup} warm-up + {args.epochs} timed epoch(s) each",
            flush=True,
        )
        results["train_throughput"] = bench_train_throughput(
            reps, args.epochs, args.warmup, args.d_model
        )
    results["total_seconds"] = time.perf_counter() - t0
    print_table(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"results: {out} ({results['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
