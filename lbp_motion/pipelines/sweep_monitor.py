"""A sweep run's per-epoch metric, and stopping it when the sweep's early termination says so.

W&B's engine needs each run's history of the sweep's metric: Bayesian search takes a
run's best value, hyperband compares runs at fixed numbers of epochs. ``lbp sweep``
adds :class:`SweepMonitor` to every run of a W&B sweep file (as
``--trainer.callbacks+=lbp_motion.pipelines.sweep_monitor.SweepMonitor``, Lightning's
way of adding a callback from the command line). After each validation it

1. appends the value of the sweep's ``metric.name`` to ``history/<run>.json`` in the
   sweep directory (rewritten atomically);
2. with ``early_terminate`` in the sweep file, asks the engine
   (:func:`~lbp_motion.pipelines.sweep_engine.runs_to_stop`) whether this run stops,
   given every other run's history and status (``state.json``), and if so sets
   ``trainer.should_stop``: the fit ends after this epoch as it does under
   ``EarlyStopping``, tests its best checkpoint, and the sweep records the run as
   ``stopped`` (with ``stopped_at``, the number of validations it had).

The monitor's values are part of every checkpoint (:meth:`SweepMonitor.state_dict`):
a run that ``lbp sweep`` resumes from its ``last.ckpt`` goes on with the values of the
epochs before the interrupt (and one that early termination had stopped stops again
at once).

Runs that ``--jobs N`` starts in parallel read each other's histories from the same
folder, so a run is judged against the runs running beside it, as on the W&B server.
:meth:`SweepMonitor.report` does steps 1-2 without a Trainer.

A sweep run's saved ``config.yaml`` keeps the callback. Fitting that config again by
hand, after the sweep has recorded the run as done, neither changes the sweep's
history nor stops the fit: the monitor sees the run's status in ``state.json`` and
stays idle, with a warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from lbp_motion.atomic import write_json
from lbp_motion.pipelines.sweep_engine import DONE, runs_to_stop
from lbp_motion.pipelines.sweep_spec import load_sweep

log = logging.getLogger(__name__)

HISTORY_DIR = "history"
CALLBACK = "lbp_motion.pipelines.sweep_monitor.SweepMonitor"


def history_path(sweep_dir: str | Path, run: str) -> Path:
    return Path(sweep_dir) / HISTORY_DIR / f"{run}.json"


def read_history(sweep_dir: str | Path, run: str) -> dict[str, Any]:
    """A run's ``{"values": [...], "stopped_at": n or None}`` (empty when it has none)."""
    path = history_path(sweep_dir, run)
    if not path.is_file():
        return {"values": [], "stopped_at": None}
    return json.loads(path.read_text())


def callback_arguments(sweep_dir: str | Path, run: str) -> list[str]:
    """The ``lbp fit`` options that add a :class:`SweepMonitor` for ``run``."""
    return [
        f"--trainer.callbacks+={CALLBACK}",
        f"--trainer.callbacks.init_args.sweep_dir={sweep_dir}",
        f"--trainer.callbacks.init_args.run={run}",
    ]


class SweepMonitor(pl.Callback):
    """Records the sweep's metric after each validation and stops the fit when the
    sweep's ``early_terminate`` says so (module docstring).

    Args:
        sweep_dir: the sweep directory (with ``sweep.yaml`` and ``state.json``).
        run: this run's name in the sweep (``run-<k>``).
    """

    def __init__(self, sweep_dir: str, run: str) -> None:
        self.sweep_dir = Path(sweep_dir)
        self.run = run
        self.spec = load_sweep(self.sweep_dir / "sweep.yaml")
        self.values: list[float] = []
        self.stopped_at: int | None = None
        self.idle = False
        self._restored = False

    def _state_runs(self) -> list[dict[str, Any]]:
        state_file = self.sweep_dir / "state.json"
        return json.loads(state_file.read_text())["runs"] if state_file.is_file() else []

    def _other_runs(self) -> list[dict[str, Any]]:
        others = []
        for entry in self._state_runs():
            if entry["name"] == self.run:
                continue
            if entry.get("status") == "running":  # its values so far, from its own file
                entry = {**entry, "history": read_history(self.sweep_dir, entry["name"])["values"]}
            others.append(entry)
        return others

    def report(self, value: float) -> bool:
        """Record this epoch's ``value``; True when the run should stop now."""
        self.values.append(float(value))
        stop = False
        if self.spec.early_terminate and self.stopped_at is None:
            me = {"name": self.run, "status": "running", "params": {}, "history": self.values}
            stop = self.run in runs_to_stop(self.spec, [*self._other_runs(), me])
            if stop:
                self.stopped_at = len(self.values)
        self._write_history()
        return stop

    def _write_history(self) -> None:
        write_json(
            history_path(self.sweep_dir, self.run),
            {"metric": self.spec.metric, "values": self.values, "stopped_at": self.stopped_at},
        )

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: a fit resumed from one (``lbp sweep`` resumes an
        interrupted run from its ``last.ckpt``) goes on with the values of the epochs
        before, as hyperband counts them."""
        return {"run": self.run, "values": list(self.values), "stopped_at": self.stopped_at}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("run") != self.run:  # another run's checkpoint: start afresh
            return
        self.values = [float(v) for v in state_dict.get("values", [])]
        self.stopped_at = state_dict.get("stopped_at")
        self._restored = True

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # a resumed fit restored its values (load_state_dict) before this hook
        if not self._restored:
            self.values, self.stopped_at = [], None
        status = {r["name"]: r.get("status") for r in self._state_runs()}.get(self.run)
        self.idle = status in DONE
        if not self.idle and self.values:  # the history goes on from the checkpoint's epoch
            self._write_history()
            if self.stopped_at is not None:  # stopped before the interrupt: it stays stopped
                trainer.should_stop = True
        if self.idle:
            log.warning(
                "SweepMonitor: %s is recorded as %s in %s; this fit (its config run again?) "
                "is not reported to the sweep and is not stopped early",
                self.run,
                status,
                self.sweep_dir / "state.json",
            )

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.idle or trainer.sanity_checking or not self.spec.metric:
            return
        value = trainer.callback_metrics.get(self.spec.metric)
        if value is not None and self.report(float(value)):
            trainer.should_stop = True
