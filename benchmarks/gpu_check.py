"""The GPU check: one short script to run whenever a GPU is at hand (issue 16).

Each step runs on ``--accelerator`` (default ``gpu``) and reports its time and result;
a step that fails is reported as failed with its error and the others still run:

1. ``attention_small``: ``lbp fit`` of experiments/tug/attention_small.yaml (the small
   attention model) for ``--epochs`` epochs
   (the test after fit included): windows/s and the test metrics;
2. ``fedavg``: round time of FedAvg for K = 1 and K = 8 clients, sequential and
   vectorised (benchmarks/federation.py's scale part, on the same data per client):
   the ratio K = 8 / K = 1 of each mode (target: vectorised at most 2) and the peak
   device memory per client;
3. ``dp``: ``lbp fit`` of experiments/tug_dp.yaml (DP-SGD with Opacus) for one epoch;
4. ``memory_error``: with the device's memory capped (``torch.cuda.set_per_process_memory_fraction``)
   a vectorised round of too many clients (256 clients of a small attention model,
   batches of 256 windows) must stop with the clear error that says how many fit, not
   with an out-of-memory crash (GPU only);
5. ``predict_video``: ``lbp_motion.predict`` on the registry's demo video with the
   attention_small checkpoint, if the pose extra and ``make test-data`` are present.

Prints a table and writes JSON (``--out``, default benchmarks/gpu_check.json). Under 5
minutes on one modern GPU. Run::

    python benchmarks/gpu_check.py            # or: make gpu-check
    python benchmarks/gpu_check.py --accelerator cpu --epochs 1   # the same steps on the CPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LBP_CACHE", str(REPO / ".cache"))
sys.path.insert(0, str(REPO / "benchmarks"))


def _fit(config: str, out: Path, accelerator: str, *extra: str) -> dict:
    from lbp_motion.cli import main

    argv = ["fit", "--config", str(REPO / config), "--trainer.accelerator", accelerator,
            "--run.wandb", "disabled", "--run.out_dir", str(out), "--trainer.enable_progress_bar", "false",
            *extra]  # fmt: skip
    t = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - t
    if code != 0:
        raise RuntimeError(f"lbp fit --config {config} exited with {code}")
    metrics = json.loads(next(out.glob("*/version_*/metrics.json")).read_text())
    test = metrics.get("test", metrics)
    keep = {k: v for k, v in test.items() if k in ("test/accuracy", "test/mcc", "test/f1_macro")}
    return {"seconds": seconds, **keep}


def attention_small(args, work: Path) -> dict:
    return _fit("experiments/tug/attention_small.yaml", work / "attention_small", args.accelerator,
                "--trainer.max_epochs", str(args.epochs))  # fmt: skip


def fedavg(args, work: Path) -> dict:
    import federation

    ns = SimpleNamespace(threads=1, accelerator=args.accelerator, rounds=3, clients="1,8",
                         per_client=64, batch_size=32)  # fmt: skip
    result = federation.scale(ns)
    rows = {(r["mode"], r["clients"]): r for r in result["rows"]}
    out = {
        f"{mode}_k8_over_k1": rows[(mode, 8)]["ratio_to_1"] for mode in ("sequential", "vectorised")
    }
    out["speedup_k8"] = rows[("vectorised", 8)]["speedup_over_sequential"]
    if "peak_mib_per_client" in rows[("vectorised", 8)]:
        out["peak_mib_per_client_k8"] = rows[("vectorised", 8)]["peak_mib_per_client"]
    out["rows"] = result["rows"]
    return out


def dp(args, work: Path) -> dict:
    return _fit(
        "experiments/tug_dp.yaml", work / "dp", args.accelerator, "--trainer.max_epochs", "1"
    )


def memory_error(args, work: Path) -> dict:
    if args.accelerator != "gpu":
        return {"skipped": "GPU only"}
    import torch

    from lbp_motion.federated.vectorized import VectorizedMemoryError, VectorizedRound
    from lbp_motion.models import TransformerClassifier
    from lbp_motion.tasks import ClassificationTask

    task = ClassificationTask(
        model=lambda f, c: TransformerClassifier(f, c, d_model=64, num_layers=2, num_heads=8),
        data_spec={"num_features": 51, "classes": ["a", "b", "c"]},
    ).cuda()
    optimizer = torch.optim.AdamW(task.parameters())
    free = torch.cuda.mem_get_info()[0]
    torch.cuda.set_per_process_memory_fraction(
        min(1.0, 2 * 2**30 / torch.cuda.get_device_properties(0).total_memory)
    )
    try:
        k, b = 256, 256
        state = task.state_dict()
        batch = {"x": torch.randn(b, 30, 51, device="cuda"), "mask": torch.ones(b, 30, dtype=torch.bool, device="cuda"),
                 "y": torch.randint(0, 3, (b,), device="cuda"), "recording": torch.zeros(b, dtype=torch.long, device="cuda")}  # fmt: skip
        rnd = VectorizedRound(task, [state] * k, optimizer)
        try:
            rnd.step([batch] * k)
        except VectorizedMemoryError as err:
            return {"clear_error": str(err), "free_gib_before_cap": free / 2**30}
        return {
            "failed": f"{k} clients of a 4-block width-256 model fitted in 2 GiB: no error to check"
        }
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)


def predict_video(args, work: Path) -> dict:
    videos = sorted((Path(os.environ["LBP_CACHE"]) / "registry").glob("sports2d-*/**/*.mp4"))
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        return {"skipped": "no pose extra (pip install lbp-motion[pose])"}
    if not videos:
        return {"skipped": "no demo video (make test-data)"}
    from lbp_motion.inference.predict import predict

    ckpt = next((work / "attention_small").glob("*/version_*/checkpoints/last.ckpt"), None)
    if ckpt is None:
        return {"skipped": "the attention_small step made no checkpoint"}
    device = "cuda" if args.accelerator == "gpu" else "cpu"
    t = time.perf_counter()
    result = predict(ckpt, videos[0], out_dir=work / "predict", device=device, progress=False)
    return {
        "seconds": time.perf_counter() - t,
        "severity": result.get("severity", result.get("label")),
    }


STEPS = {"attention_small": attention_small, "fedavg": fedavg, "dp": dp, "memory_error": memory_error, "predict_video": predict_video}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accelerator", default="gpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--only", default=",".join(STEPS))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "gpu_check.json"))
    args = parser.parse_args()
    import torch

    report = {"accelerator": args.accelerator, "torch": torch.__version__, "steps": {}}
    if torch.cuda.is_available():
        report["device"] = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            t = time.perf_counter()
            try:
                result = {"ok": True, **STEPS[name](args, Path(tmp))}
            except Exception as err:  # reported, and the other steps still run
                result = {
                    "ok": False,
                    "error": f"{type(err).__name__}: {err}",
                    "trace": traceback.format_exc()[-2000:],
                }
            result["wall_s"] = time.perf_counter() - t
            report["steps"][name] = result
            print(
                f"[gpu-check] {name}: {'ok' if result['ok'] else 'FAILED'} ({result['wall_s']:.0f} s)",
                flush=True,
            )
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"\n{'step':15s} {'ok':5s} {'wall s':>7s}  result")
    for name, result in report["steps"].items():
        brief = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items()
                 if k not in ("ok", "wall_s", "trace", "rows")}  # fmt: skip
        print(f"{name:15s} {str(result['ok']):5s} {result['wall_s']:7.0f}  {brief}")
    print(f"wrote {args.out}")
    return 0 if all(r["ok"] for r in report["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
