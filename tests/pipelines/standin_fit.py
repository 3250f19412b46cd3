"""A stand-in for `lbp fit` in the sweep engine's tests: no training, a known curve.

A run's quality is ``q = exp(-((x - X0)^2 + (y - Y0)^2) / 0.05)`` from its ``--x=`` and
``--y=`` options (optimum ``STANDIN_OPTIMUM="X0,Y0"``, default 0.7,0.2), or ``--q=``
itself. After epoch e (1..EPOCHS) its ``val/f1_macro`` is ``q * (1 - 0.5**e)``; each value
goes to the run's SweepMonitor, built from the options ``lbp sweep`` adds, as the real
callback reports it, and the run stops when the monitor says so. It writes
``metrics.json`` (the last value) into a run directory as ``lbp fit`` does. Usable in
process (:func:`fit`, in place of ``run_arguments``) and as a program
(``python standin_fit.py fit ...``, in place of ``python -m lbp_motion``).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

EPOCHS = 8


def _option(argv: list[str], key: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == key:
            return argv[i + 1]
        if arg.startswith(key + "="):
            return arg.split("=", 1)[1]
    return None


def quality(argv: list[str]) -> float:
    if _option(argv, "--q") is not None:
        return float(_option(argv, "--q"))
    x0, y0 = (float(v) for v in os.environ.get("STANDIN_OPTIMUM", "0.7,0.2").split(","))
    x, y = float(_option(argv, "--x") or 0.5), float(_option(argv, "--y") or 0.5)
    return math.exp(-((x - x0) ** 2 + (y - y0) ** 2) / 0.05)


def fit(argv: list[str]):
    from lbp_motion.evaluation.results import make_run_dir
    from lbp_motion.pipelines.sweep_monitor import SweepMonitor
    from lbp_motion.runs import RunResult

    run_dir = make_run_dir(_option(argv, "--run.out_dir"), _option(argv, "--run.name"))
    monitor = SweepMonitor(
        _option(argv, "--trainer.callbacks.init_args.sweep_dir"),
        _option(argv, "--trainer.callbacks.init_args.run"),
    )
    q, value = quality(argv), 0.0
    for epoch in range(1, EPOCHS + 1):
        value = q * (1 - 0.5**epoch)
        time.sleep(float(os.environ.get("STANDIN_EPOCH_SECONDS", "0")))
        if monitor.report(value):
            break
    (run_dir / "metrics.json").write_text(json.dumps({"val/f1_macro": value, "q": q}))
    return RunResult.from_run_dir(run_dir)


if __name__ == "__main__":
    fit(sys.argv[2:])  # argv[1] is the subcommand, fit
