"""``lbp sweep``: its command line and summary; :func:`lbp_motion.pipelines.sweep.run_sweep`
runs it."""

from __future__ import annotations

import argparse
import json
import sys

from lbp_motion.cli.commands import add_out_dir


def cmd_sweep(argv: list[str]) -> int:
    """``lbp sweep``: run a W&B sweep file locally and offline on W&B's sweep engine
    (grid, random, bayes, hyperband early termination), resumable."""
    parser = argparse.ArgumentParser(
        prog="lbp sweep",
        allow_abbrev=False,  # `--out` or `--se...` must reach lbp fit, not match our options
        description="Run a Weights & Biases sweep file locally without a W&B server, choosing runs "
        "with W&B's own sweep engine (grid, random, bayes; hyperband early termination): each run is an "
        "`lbp fit` logged offline to W&B and CSV; the table of runs goes to <out_dir>/<sweep>/results.md. "
        "Rerun the same command to resume. Options not listed here (e.g. --data.root DIR) are passed "
        "to every run.",
    )
    parser.add_argument(
        "sweep_file",
        help="a W&B sweep file (experiments/sweeps/*.yaml) or a run list "
        "(kind: run_list, e.g. experiments/emopain/sweeps/*.yaml)",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="number of runs in all (default: the whole grid, or run_cap)",
    )
    add_out_dir(parser, "parent of the sweep directory", default="runs")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the engine's random draws (default: 0)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at a time, each in its own process with its output in <sweep>/logs/ (default: 1)",
    )
    args, overrides = parser.parse_known_args(argv)
    from lbp_motion.pipelines.sweep import DONE, STATE_FILE, describe, load_sweep, run_sweep
    from lbp_motion.pipelines.sweep_results import best_run, format_value

    sweep_dir = run_sweep(
        args.sweep_file,
        count=args.count,
        out_dir=args.out_dir,
        seed=args.seed,
        overrides=overrides,
        jobs=args.jobs,
    )
    spec = load_sweep(args.sweep_file)
    print((sweep_dir / "results.md").read_text())
    runs = json.loads((sweep_dir / STATE_FILE).read_text())["runs"]
    best = best_run(spec, runs)
    failed = [r["name"] for r in runs if r["status"] not in DONE]
    stopped = [r["name"] for r in runs if r["status"] == "stopped"]
    if best is None:
        print(f"lbp sweep: no run finished; see {sweep_dir}", file=sys.stderr)
        return 1
    value = (best["metrics"] or {}).get(spec.metric) if spec.metric else None
    if spec.metric and value is None:
        print(
            f"lbp sweep: note: no run's metrics.json has {spec.metric!r} (metric.name of the sweep file); "
            "the table is in run order"
        )
    print(
        f"Best: {best['name']}"
        + (f" ({spec.metric} = {format_value(value)})" if spec.metric else "")
        + ": "
        + describe(spec, best["params"])
    )
    print(f"Best run: {best['run_dir']}")
    if stopped:
        print(f"lbp sweep: early termination stopped {len(stopped)} run(s): {', '.join(stopped)}")
    if failed:
        print(
            f"lbp sweep: {len(failed)} run(s) did not finish: {', '.join(failed)}; rerun to retry them"
        )
    print(f"Results: {sweep_dir.resolve()}")
    return 0
