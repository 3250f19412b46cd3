"""Pose extraction speed per backend on this machine: measurements, not tests.

Run from the repository root (after ``make test-data``, which fetches the Sports2D
demo video and the mediapipe 0.10.21 pose models into ``$LBP_CACHE/registry``)::

    OMP_NUM_THREADS=1 python benchmarks/pose_bench.py [--video FILE] [--repeats N] [--out FILE]

For each backend (``mediapipe``; ``detectron2`` where installed, on CPU and, where
present, on a CUDA GPU) it reports frames per second of

* ``inference``: the backend alone on frames already decoded (``estimate``);
* ``pipeline``: ``extract_video`` end to end (decoding, inference, tracking, layout
  conversion), i.e. what ``lbp extract-poses`` achieves, at stride 1 and 3;

plus ``decode``: PyAV decoding to RGB alone. Prints a table and writes JSON (default
``benchmarks/pose_results.json``). The numbers in docs/pose.md come from this script.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LBP_CACHE", str(REPO / ".cache"))
os.environ.setdefault("LBP_OFFLINE", "1")  # measure the offline bundle; never download
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from lbp_motion.pose.base import BackendUnavailable, create_estimator  # noqa: E402
from lbp_motion.pose.bundle import registry_dir  # noqa: E402
from lbp_motion.pose.extract import extract_video  # noqa: E402
from lbp_motion.pose.video import VideoReader  # noqa: E402

DEFAULT_VIDEO = registry_dir() / "sports2d-0.8.34" / "Sports2D" / "Demo" / "demo.mp4"


def _cpu_pressure() -> float | None:
    try:
        with open("/proc/pressure/cpu") as fh:
            return float(fh.readline().split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return None


def bench_decode(video: Path, repeats: int) -> dict:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        with VideoReader(video) as reader:
            n = sum(1 for _ in reader.frames())
        rates.append(n / (time.perf_counter() - start))
    return {"frames": n, "frames_per_s": statistics.median(rates), "runs": rates}


def bench_backend(
    name: str, options: dict, video: Path, repeats: int, frames: list[np.ndarray]
) -> dict:
    try:
        estimator = create_estimator(name, **options)
    except BackendUnavailable as err:
        return {"available": False, "reason": str(err).split(";")[0][:200]}
    out: dict = {"available": True, **estimator.info(), "options": options}
    with estimator:
        rates = []
        for _ in range(repeats):
            estimator.start_video(30.0, (frames[0].shape[1], frames[0].shape[0]))
            start = time.perf_counter()
            batch = max(1, estimator.batch_size)
            for i in range(0, len(frames), batch):
                estimator.estimate(
                    frames[i : i + batch],
                    [int(1000 * (i + k) / 30) for k in range(len(frames[i : i + batch]))],
                )
            rates.append(len(frames) / (time.perf_counter() - start))
        out["inference_frames_per_s"] = statistics.median(rates)
        for stride in (1, 3):
            rates, detection = [], None
            for _ in range(repeats):
                result = extract_video(video, estimator, stride=stride, progress=False)
                rates.append(result.frames / result.seconds)
                detection = result.detected / result.frames
            out[f"pipeline_stride{stride}_frames_per_s"] = statistics.median(rates)
            out[f"pipeline_stride{stride}_detection_rate"] = detection
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "pose_results.json")
    args = parser.parse_args()
    if not args.video.is_file():
        print(f"no video at {args.video}: run `make test-data` or pass --video", file=sys.stderr)
        return 1
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    with VideoReader(args.video) as reader:
        info = reader.info
        frames = [f.image for f in reader.frames()]
    results = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cuda": torch.cuda.is_available()},
        "video": {"path": str(args.video), "frames": len(frames), "fps": info.fps, "size": list(info.image_size)},
        "cpu_pressure_before": _cpu_pressure(),
        "decode": bench_decode(args.video, args.repeats),
        "backends": {},
    }  # fmt: skip
    runs = [("mediapipe", {}), ("detectron2", {"device": "cpu"})]
    if torch.cuda.is_available():
        runs.append(("detectron2", {"device": "cuda"}))
    for name, options in runs:
        key = name + (f"-{options['device']}" if "device" in options else "")
        results["backends"][key] = bench_backend(name, options, args.video, args.repeats, frames)
    results["cpu_pressure_after"] = _cpu_pressure()
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    print(f"video: {args.video.name}, {len(frames)} frames {info.width}x{info.height} @ {info.fps:g} fps; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; cpu pressure {results['cpu_pressure_before']} -> "
          f"{results['cpu_pressure_after']}")  # fmt: skip
    print(f"decode (PyAV -> RGB): {results['decode']['frames_per_s']:.1f} frames/s")
    print(
        "| backend | inference frames/s | pipeline frames/s, stride 1 | stride 3 | detection rate (stride 1) |"
    )
    print("|---|---|---|---|---|")
    for key, r in results["backends"].items():
        if not r["available"]:
            print(f"| {key} | not available: {r['reason']} | | | |")
            continue
        print(f"| {key} | {r['inference_frames_per_s']:.1f} | {r['pipeline_stride1_frames_per_s']:.1f} | "
              f"{r['pipeline_stride3_frames_per_s']:.1f} | {100 * r['pipeline_stride1_detection_rate']:.1f}% |")  # fmt: skip
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
