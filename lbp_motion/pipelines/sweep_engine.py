"""W&B's own sweep engine, run offline: what to try next and which runs to stop.

``lbp sweep`` chooses runs with the ``sweeps`` package, the search engine that W&B's
server runs for ``wandb sweep`` + ``wandb agent``: grid, random and Bayesian search
(a Gaussian process fitted to the runs so far), and hyperband early termination. A
sweep run locally therefore chooses what W&B would choose. This module turns the
sweep's ``state.json`` runs into the engine's :class:`sweeps.SweepRun` objects and
back:

* :func:`propose` gives run ``k`` its parameters: the engine's next run given every
  run so far (finished, stopped, failed, running), with Python's and NumPy's global
  generators (which the engine draws from) seeded from ``(seed, k)`` for that call
  only, so a sweep repeats and a resumed sweep proposes what it would have;
* :func:`runs_to_stop` asks hyperband which running runs to stop, from every run's
  per-epoch values of the sweep's metric (:mod:`lbp_motion.pipelines.sweep_monitor`
  records them);
* :func:`schema_violations` checks a sweep file against W&B's JSON schema.

The engine is a separate install: its wheel declares ``numpy<2`` but runs on the
NumPy 2 the project uses (its tests here are the check), so ``make install`` installs
it with ``pip install --no-deps sweeps==0.3.0 jsonref``.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from lbp_motion.errors import ConfigError

if TYPE_CHECKING:
    from lbp_motion.pipelines.sweep_spec import SweepSpec

#: the engine's version this module was written against (``make install`` pins it)
ENGINE_VERSION = "0.3.0"
INSTALL_HINT = f"pip install --no-deps sweeps=={ENGINE_VERSION} jsonref  (make install does it)"
#: the most grid points :func:`grid_points` lists
GRID_LIMIT = 100_000
#: ``state.json`` status -> the engine's run state. A run stopped by early termination
#: counts as finished (its values so far are real results, as on the W&B server); an
#: interrupted run is run again with the same parameters, so it is pending.
ENGINE_STATES = {
    "finished": "finished",
    "stopped": "finished",
    "failed": "failed",
    "running": "running",
    "pending": "pending",
    "interrupted": "pending",
}
#: statuses of a run that is done: never run again on a resume
DONE = ("finished", "stopped")


@cache
def engine() -> ModuleType:
    """The ``sweeps`` package; a :class:`ConfigError` saying how to install it."""
    try:
        with warnings.catch_warnings():  # pydantic's note on the engine's v1-style config keys
            warnings.simplefilter("ignore")
            import sweeps
    except ImportError:
        raise ConfigError(
            f"lbp sweep needs W&B's sweep engine, the `sweeps` package: {INSTALL_HINT}"
        ) from None
    return sweeps


def schema_violations(raw: dict[str, Any]) -> list[str]:
    """W&B's schema's complaints about a sweep config (empty when it is valid)."""
    return list(dict.fromkeys(engine().schema_violations_from_proposed_config(raw)))


def engine_config(spec: SweepSpec) -> dict[str, Any]:
    """The part of the sweep file the engine reads."""
    config: dict[str, Any] = {"method": spec.method, "parameters": spec.raw["parameters"]}
    if spec.metric:
        config["metric"] = {"name": spec.metric, "goal": spec.goal}
        for key in ("impute", "impute_while_running", "target"):
            if key in spec.raw.get("metric", {}):
                config["metric"][key] = spec.raw["metric"][key]
    if spec.early_terminate:
        config["early_terminate"] = spec.early_terminate
    return config


def _plain(value: Any) -> Any:
    """A NumPy scalar or array from the engine as the Python value W&B would log."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def sweep_run(spec: SweepSpec, entry: dict[str, Any]) -> Any:
    """One ``state.json`` run as the engine's :class:`sweeps.SweepRun`: its parameters,
    state (:data:`ENGINE_STATES`), final metric and per-epoch metric values."""
    summary, history = {}, []
    if spec.metric:
        value = (entry.get("metrics") or {}).get(spec.metric)
        if isinstance(value, (int, float)):
            summary[spec.metric] = value
        history = [{spec.metric: v} for v in entry.get("history") or []]
    return engine().SweepRun(
        name=entry["name"],
        state=ENGINE_STATES.get(entry.get("status", "pending"), "pending"),
        config={key: {"value": value} for key, value in (entry.get("params") or {}).items()},
        summary_metrics=summary,
        history=history,
    )


@contextmanager
def seeded(seed: int, k: int) -> Iterator[None]:
    """Python's and NumPy's global generators seeded from ``(seed, k)`` inside, as they
    were outside (the engine draws from them)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    random.seed(f"lbp-sweep-{seed}-{k}")
    np.random.seed([seed & 0xFFFFFFFF, k])
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def propose(
    spec: SweepSpec, runs: Sequence[dict[str, Any]], k: int, seed: int = 0
) -> dict[str, Any] | None:
    """Run ``k``'s parameters (option -> value, in the file's order) as the engine
    proposes them after ``runs`` (``state.json`` entries); None when a grid is done."""
    sweeps = engine()
    with seeded(seed, k), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Gaussian process's convergence notes
        try:
            proposal = sweeps.next_run(engine_config(spec), [sweep_run(spec, r) for r in runs])
        except ValueError as err:
            raise ConfigError(
                f"sweep file {spec.path or spec.name}: W&B's sweep engine: {err}"
            ) from None
    if proposal is None:
        return None
    return {key: _plain(proposal.config[key]["value"]) for key in spec.parameters}


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every combination of a grid search, in the engine's order (the first parameter
    varies slowest; ``int_uniform`` and ``q_uniform`` ranges as the engine lists them)."""
    try:
        proposals = engine().next_runs(engine_config(spec), [], n=GRID_LIMIT)
    except ValueError as err:
        raise ConfigError(
            f"sweep file {spec.path or spec.name}: W&B's sweep engine: {err}"
        ) from None
    return [
        {key: _plain(p.config[key]["value"]) for key in spec.parameters}
        for p in proposals
        if p is not None
    ]


def grid_size(spec: SweepSpec) -> int:
    """The number of combinations of a grid search."""
    return len(grid_points(spec))


def runs_to_stop(spec: SweepSpec, runs: Sequence[dict[str, Any]]) -> list[str]:
    """Names of the running ``runs`` that the sweep's ``early_terminate`` (hyperband)
    stops now, judged by every run's per-epoch values of the sweep's metric."""
    if not spec.early_terminate:
        return []
    stopped = engine().stop_runs(engine_config(spec), [sweep_run(spec, r) for r in runs])
    return [run.name for run in stopped]


def check_early_terminate(spec: SweepSpec, where: str) -> None:
    """Refuse an ``early_terminate`` the engine cannot apply, naming the field."""
    if not spec.metric:
        raise ConfigError(f"{where}: early_terminate needs metric.name (the metric it compares)")
    hint = "hyperband needs type: hyperband and min_iter (or max_iter and s), eta optional"
    violations = schema_violations(engine_config(spec))
    if violations:
        raise ConfigError(f"{where}: early_terminate {spec.early_terminate!r}: {hint}")
    try:
        runs_to_stop(spec, [])
    except Exception as err:  # the engine's own checks (e.g. bands it cannot form)
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            f"{where}: early_terminate {spec.early_terminate!r}: {detail} ({hint})"
        ) from None
