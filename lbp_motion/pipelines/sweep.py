"""Hyper-parameter sweeps: ``lbp sweep FILE [--count N]`` runs a Weights & Biases sweep
file locally, without a W&B server, choosing runs with W&B's own sweep engine.

The sweep file is W&B's own format (``wandb sweep FILE`` + ``wandb agent`` run it
unchanged when online). The local runner reads the same fields:

* ``method``: ``grid``, ``random`` or ``bayes``; each run's parameters come from W&B's
  sweep engine (:mod:`lbp_motion.pipelines.sweep_engine`), given every run so far and
  their per-epoch values of the metric, so the search is the one W&B's server runs
  (random draws and the Gaussian process's samples seeded by ``--seed`` and the run's
  number);
* ``metric``: ``name`` (a key of ``metrics.json`` that the run also logs each epoch,
  e.g. ``val/f1_macro``) and ``goal`` (``maximize`` or ``minimize``, W&B's default):
  what Bayesian search models, early termination compares, and the results table ranks;
* ``early_terminate``: hyperband (``min_iter`` or ``max_iter``, ``eta``, ``s``,
  ``strict``), counted in validations; a run it stops ends through Lightning after that
  epoch, is tested and recorded as ``stopped`` (:mod:`lbp_motion.pipelines.sweep_monitor`);
* ``parameters``: per dotted ``lbp`` option (``model.init_args.lr``) any W&B parameter
  (checked against W&B's schema); nested ``parameters`` are refused;
* ``command`` (default ``${env} ${interpreter} ${program} ${args}``) and ``program``:
  the command must run ``lbp`` (``lbp``, a path ending in ``/lbp``, or
  ``python -m lbp_motion.cli``) and contain ``${args}`` (``--key=value``, as the W&B
  agent passes them) or ``${args_no_equals}`` (``--key value``);
* ``run_cap``: the default ``--count`` of a random or Bayesian sweep.

Layout of the sweep directory ``<out_dir>/<sweep name>/``::

    sweep.yaml            a copy of the sweep file
    state.json            per run: parameters, status, run directory, metrics and
                          the metric's per-epoch values (rewritten atomically after
                          every change)
    history/<name>.json   each run's per-epoch values of the metric while it runs
    run-<k>/version_<n>/  run k's ordinary ``lbp fit`` run directory
    logs/<name>.log       with ``--jobs N`` (N runs at a time, each its own process):
                          each run's output
    results.csv           every run: parameters and final metrics, best first
    results.md            the same as a Markdown table (the main metrics only)

A run whose status is ``finished`` or ``stopped`` is never run again: rerunning the
same command resumes an interrupted sweep; a larger ``--count`` extends it. A run that
was interrupted goes on from the ``last.ckpt`` of its latest run directory (``lbp fit
--ckpt_path``, into a new ``version_<n>``: the epochs done are not repeated, the best
checkpoint and the metric's history carry over); one interrupted before its first
checkpoint, and one that failed, runs again from the start with its parameters.

A run list (``kind: run_list``: ``runs`` of ``name``, ``config``, ``overrides``, e.g.
PLAAN's comparisons in ``experiments/emopain/sweeps/``) runs the same way, one
``lbp fit --config CONFIG OVERRIDES`` per entry, in ``<name>/version_<n>/``, ranked by
its ``metric`` (default ``test/mcc``, maximised); it has no search and no early
termination.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lbp_motion.atomic import write_json
from lbp_motion.errors import ConfigError
from lbp_motion.evaluation.results import last_checkpoint, run_versions
from lbp_motion.interrupts import Interrupted
from lbp_motion.pipelines.sweep_engine import (  # noqa: F401 (grid_points re-exported)
    DONE,
    grid_points,
    grid_size,
    propose,
)
from lbp_motion.pipelines.sweep_jobs import WAIT, Job, run_jobs
from lbp_motion.pipelines.sweep_monitor import callback_arguments, history_path, read_history
from lbp_motion.pipelines.sweep_results import write_tables
from lbp_motion.pipelines.sweep_spec import (  # noqa: F401 (re-exported: these names import from here as before)
    DEFAULT_COMMAND,
    METHODS,
    RUN_DIR,
    SweepSpec,
    lbp_arguments,
    load_sweep,
    parse_run_list,
    parse_sweep,
)
from lbp_motion.pipelines.sweep_summary import (  # noqa: F401 (SITE_SUMMARY re-exported)
    SITE_SUMMARY,
    seed_summary,
    write_seed_summary,
)
from lbp_motion.runs import RunResult, run_arguments

STATE_FILE = "state.json"


def total_runs(spec: SweepSpec) -> int | None:
    """The number of runs a sweep has in all: a run list's entries, a grid's
    combinations; None for random and Bayesian search (no end)."""
    if spec.runs is not None:
        return len(spec.runs)
    return grid_size(spec) if spec.method == "grid" else None


def run_parameters(
    spec: SweepSpec, k: int, runs: Sequence[dict[str, Any]] = (), seed: int = 0
) -> dict[str, Any] | None:
    """Run ``k``'s parameters: a run list's entry k; the parameters run k had before
    (``runs`` are the ``state.json`` entries: a resumed run repeats them); else what
    W&B's engine proposes after the other runs (None when a grid is done)."""
    if spec.runs is not None:
        run = spec.runs[k]
        return {"config": run["config"], "overrides": shlex.join(run["overrides"])}
    if k < len(runs) and runs[k].get("params"):
        return runs[k]["params"]
    return propose(spec, [r for r in runs if r["index"] != k], k, seed)


def _status(runs: Sequence[dict[str, Any]], name: str) -> str | None:
    """The ``state.json`` status of the run called ``name``; None before it started."""
    return next((r["status"] for r in runs if r["name"] == name), None)


def waits(spec: SweepSpec, k: int, runs: Sequence[dict[str, Any]]) -> bool:
    """Whether run list entry ``k`` must wait: an entry it reads (``{run_dir:NAME}``) is
    still running."""
    if spec.runs is None:
        return False
    return any(_status(runs, n) == "running" for n in spec.runs[k].get("needs", ()))


def with_run_dirs(
    spec: SweepSpec, k: int, params: dict[str, Any], runs: Sequence[dict[str, Any]]
) -> tuple[dict[str, Any], str | None]:
    """Run list entry ``k``'s parameters with ``{run_dir:NAME}`` filled in from the
    finished runs in ``runs``; and the first entry it reads that did not finish (None
    when every one did)."""
    if spec.runs is None or not spec.runs[k].get("needs"):
        return params, None
    dirs = {r["name"]: r.get("run_dir") for r in runs if r["status"] in ("finished", "stopped")}
    missing = next((n for n in spec.runs[k]["needs"] if not dirs.get(n)), None)
    if missing is not None:
        return params, missing
    overrides = [RUN_DIR.sub(lambda m: str(dirs[m.group(1)]), a) for a in spec.runs[k]["overrides"]]
    return {**params, "overrides": shlex.join(overrides)}, None


def format_arguments(params: dict[str, Any], macro: str = "${args}") -> list[str]:
    """Parameters as the W&B agent passes them: ``${args}`` -> ``--key=value``,
    ``${args_no_equals}`` -> ``--key value``, ``value`` formatted with ``str``
    (as wandb's ``create_sweep_command_args`` does)."""
    if macro == "${args_no_equals}":
        return [a for key, value in params.items() for a in (f"--{key}", str(value))]
    return [f"--{key}={value}" for key, value in params.items()]


def describe(spec: SweepSpec, params: dict[str, Any]) -> str:
    """A run's parameters as a user reads them: ``--key=value ...``, or for a run list
    ``--config CONFIG OVERRIDES``."""
    if spec.runs is not None:
        return f"--config {params['config']} {params['overrides']}".strip()
    return " ".join(format_arguments(params))


def command_for(
    spec: SweepSpec, params: dict[str, Any], extra: list[str] | None = None
) -> list[str]:
    """The ``lbp`` argument list of one run: the sweep's command with its macro filled
    in; ``extra`` options go just before the parameters (after the command's
    ``--config``, which would otherwise override them; before the parameters, which
    therefore win). A parameter named ``config`` (a sweep over config files) goes
    before ``extra``, for the same reason."""
    if spec.runs is not None:  # a run list: lbp fit --config CONFIG [extra] OVERRIDES
        return [
            "fit",
            "--config",
            params["config"],
            *(extra or []),
            *shlex.split(params["overrides"]),
        ]
    out: list[str] = []
    # a swept `config` (a sweep over configs, e.g. a model comparison) goes first: a
    # config file set after `extra` would reset what `extra` sets (e.g. --data.root)
    configs = {k: v for k, v in params.items() if k == "config"}
    others = {k: v for k, v in params.items() if k != "config"}
    for token in spec.lbp_args:
        if token in ("${args}", "${args_no_equals}"):
            out.extend(
                [
                    *format_arguments(configs, token),
                    *(extra or []),
                    *format_arguments(others, token),
                ]
            )
        else:
            out.append(token)
    return out


# -- the runner ----------------------------------------------------------------------------
@contextmanager
def _environment(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _latest_version(run_parent: Path) -> Path | None:
    return next(iter(run_versions(run_parent)), None)


def _run_count(spec: SweepSpec, count: int | None, sweep_file: str | Path, log) -> int:
    """How many runs the sweep has: ``count``, by default the whole grid or the file's
    ``run_cap``; a grid runs at most its combinations (with a note)."""
    size = total_runs(spec)
    if count is None:
        if size is not None:
            count = size
        elif spec.run_cap:
            count = spec.run_cap
        else:
            raise ConfigError(
                f"sweep file {sweep_file}: a {spec.method} search needs --count N (or run_cap in the file)"
            )
    if count < 1:
        raise ConfigError(f"--count {count}: expected a positive number of runs")
    if size is not None and count > size:
        what = "runs" if spec.runs is not None else "combinations"
        log(f"lbp sweep: note: the sweep has {size} {what}; running those, not {count}")
        count = size
    return count


def _open_state(
    spec: SweepSpec,
    sweep_dir: Path,
    sweep_file: str | Path,
    *,
    seed: int,
    overrides: list[str],
    log: Callable[[str], Any],
) -> dict[str, Any]:
    """The sweep's state: that of its ``state.json`` when the directory holds the same
    sweep (a resume; a note when the options for every run changed), else a new one,
    with a copy of the sweep file; raises :class:`ConfigError` for another sweep."""
    state_path = sweep_dir / STATE_FILE
    if not state_path.is_file():
        shutil.copyfile(sweep_file, sweep_dir / "sweep.yaml")
        return {
            "sweep": spec.name,
            "sweep_file": str(sweep_file),
            "method": spec.method,
            "seed": seed,
            "metric": spec.metric,
            "goal": spec.goal,
            "fingerprint": spec.fingerprint(),
            "overrides": list(overrides),
            "runs": [],
        }
    state = json.loads(state_path.read_text())
    if state.get("fingerprint") != spec.fingerprint() or state.get("seed") != seed:
        raise ConfigError(
            f"sweep directory {sweep_dir} holds a sweep with other parameters, command or seed; "
            "delete it or give the sweep another name (the file's name field)"
        )
    if state.get("overrides") != list(overrides):
        log(
            f"lbp sweep: note: the runs before were started with the options {state.get('overrides')}, "
            f"the runs from now on with {list(overrides)}"
        )
        state["overrides"] = list(overrides)
    return state


def _save_state(sweep_dir: Path, state: dict[str, Any]) -> None:
    write_json(sweep_dir / STATE_FILE, state)


def _run_argv(
    spec: SweepSpec, params: dict[str, Any], name: str, sweep_dir: Path, overrides: list[str]
) -> list[str]:
    """The ``lbp`` arguments of one run: :func:`command_for` with offline W&B, the
    sweep's ``overrides`` and (a W&B sweep, not a run list) the
    :class:`~lbp_motion.pipelines.sweep_monitor.SweepMonitor` that records its metric
    each epoch and applies early termination; its run directory
    ``<sweep_dir>/<name>/version_<n>/``."""
    monitor = callback_arguments(sweep_dir, name) if spec.runs is None else []
    return [
        *command_for(spec, params, ["--run.wandb", "offline", *monitor, *overrides]),
        "--run.out_dir",
        str(sweep_dir),
        "--trainer.default_root_dir",
        str(sweep_dir),
        "--run.name",
        name,
    ]


def _launch(
    spec: SweepSpec,
    entry: dict[str, Any],
    argv: list[str],
    args: list[str],
    *,
    started: float,
    state: dict[str, Any],
    sweep_dir: Path,
    log: Callable[[str], Any],
):
    """Run ``argv`` through :func:`lbp_motion.runs.run_arguments` in the sweep's W&B
    group; returns its result, or None when the run failed (a failed run does not stop
    the sweep, as with wandb agent). An interrupt marks ``entry`` interrupted (so that
    the resumed sweep runs it again), arguments lbp rejects (``args``: the run's command
    as the sweep file gives it) mark it failed; both are saved, then raised. ``started``:
    when the run started (its seconds so far are saved with an interrupt)."""
    try:
        with _environment(WANDB_RUN_GROUP=spec.name, WANDB_JOB_TYPE="sweep"):
            return run_arguments(argv)
    except Interrupted:
        entry.update(status="interrupted", seconds=_seconds(entry, started))
        _save_state(sweep_dir, state)
        raise
    except SystemExit as exc:  # the argument parser rejected the run's arguments
        entry["status"] = "failed"
        _save_state(sweep_dir, state)
        raise ConfigError(
            f"sweep {spec.name}, {entry['name']}: lbp rejected the arguments {' '.join(args)} (exit status {exc.code})"
        ) from None
    except Exception as exc:
        log(f"lbp sweep: {entry['name']} failed: {type(exc).__name__}: {exc}")
        return None


def _resume_checkpoint(sweep_dir: Path, entry: dict[str, Any]) -> Path | None:
    """Where an interrupted run goes on from (:func:`last_checkpoint`). Interrupted:
    ``interrupted``, or ``running`` in the state a new sweep process opens (the process
    before was killed outright). None for any other status, or without a checkpoint."""
    if entry.get("status") not in ("interrupted", "running"):
        return None
    return last_checkpoint(sweep_dir / entry["name"])


def _seconds(entry: dict[str, Any], started: float) -> float:
    """A run's seconds: since ``started`` (this attempt) plus those of the attempts it
    resumes (``seconds_before``; a sweep process killed outright saves none)."""
    return round(entry.get("seconds_before", 0.0) + time.monotonic() - started, 1)


def _record(entry: dict[str, Any], result, started: float, sweep_dir: Path) -> None:
    """A run's outcome in its ``entry``: finished (or stopped, when early termination
    stopped it) with its run directory, metrics, per-epoch values of the sweep's metric
    and seconds (:func:`_seconds`); else failed, with the run directory it left, if any."""
    history = read_history(sweep_dir, entry["name"])
    entry["history"] = history["values"]
    if result is not None and result.metrics:
        entry.update(
            status="stopped" if history["stopped_at"] else "finished",
            stopped_at=history["stopped_at"],
            run_dir=str(result.run_dir),
            metrics=result.metrics,
            seconds=_seconds(entry, started),
        )
    else:
        run_dir = (
            result.run_dir if result is not None else _latest_version(sweep_dir / entry["name"])
        )
        entry.update(status="failed", run_dir=str(run_dir) if run_dir else None)


def _prepare_run(
    spec: SweepSpec,
    k: int,
    state: dict[str, Any],
    sweep_dir: Path,
    *,
    count: int,
    seed: int,
    overrides: list[str],
    log: Callable[[str], Any],
) -> tuple[dict[str, Any], list[str], list[str]] | None:
    """Run ``k``'s entry in ``state`` (status ``running``, saved), its ``lbp`` arguments
    and its command as the sweep file gives it; None when it finished before."""
    runs: list[dict[str, Any]] = state["runs"]
    name = spec.runs[k]["name"] if spec.runs is not None else f"run-{k}"
    if k < len(runs) and runs[k]["status"] in DONE:
        log(f"lbp sweep: {name} {runs[k]['status']} before; skipping")
        return None
    params = run_parameters(spec, k, runs, seed)
    if params is None:
        log(f"lbp sweep: the grid is done after {k} runs")
        return None
    params, missing = with_run_dirs(spec, k, params, runs)
    resume = _resume_checkpoint(sweep_dir, runs[k]) if k < len(runs) else None
    entry = {
        "index": k,
        "name": name,
        "params": params,
        "status": "running",
        "run_dir": None,
        "metrics": None,
    }
    if resume is not None:
        entry["resumed_from"] = str(resume)
        entry["seconds_before"] = runs[k].get("seconds", 0.0)
    if k < len(runs):
        runs[k] = entry
    else:
        runs.append(entry)
    if missing is not None:
        entry["status"] = "failed"
        _save_state(sweep_dir, state)
        log(
            f"lbp sweep: {name} not run: it reads the run directory of {missing}, which is "
            f"{_status(runs, missing) or 'not run'}, not finished"
        )
        return None
    argv = _run_argv(spec, params, name, sweep_dir, overrides)
    if resume is None:
        history_path(sweep_dir, name).unlink(missing_ok=True)  # a rerun's values start afresh
    else:  # its values so far come back from the checkpoint (SweepMonitor.state_dict)
        argv += ["--ckpt_path", str(resume)]
    _save_state(sweep_dir, state)
    again = f", resumed from {resume}" if resume is not None else ""
    log(f"lbp sweep: {name} ({k + 1}/{count}{again}): " + describe(spec, params))
    return entry, argv, command_for(spec, params)


def _run_one(
    spec: SweepSpec,
    k: int,
    state: dict[str, Any],
    sweep_dir: Path,
    *,
    count: int,
    seed: int,
    overrides: list[str],
    log: Callable[[str], Any],
) -> None:
    """Run ``k`` of ``count`` in this process unless it finished before: its entry in
    ``state`` (saved before and after the run), then the results tables of the runs so far."""
    prepared = _prepare_run(
        spec, k, state, sweep_dir, count=count, seed=seed, overrides=overrides, log=log
    )
    if prepared is None:
        return
    entry, argv, args = prepared
    started = time.monotonic()
    result = _launch(
        spec, entry, argv, args, started=started, state=state, sweep_dir=sweep_dir, log=log
    )
    _record(entry, result, started, sweep_dir)
    _save_state(sweep_dir, state)
    write_tables(spec, state["runs"][:count], sweep_dir)


def _run_in_processes(
    spec: SweepSpec,
    state: dict[str, Any],
    sweep_dir: Path,
    *,
    count: int,
    seed: int,
    overrides: list[str],
    jobs: int,
    log: Callable[[str], Any],
) -> None:
    """Every unfinished run of ``count``, ``jobs`` at a time, each in its own process
    (:mod:`lbp_motion.pipelines.sweep_jobs`) with its output in ``logs/<name>.log``;
    each run's parameters are chosen as it starts, the state and tables are updated as
    each ends. An interrupt marks the running runs ``interrupted`` (a resumed sweep
    runs them again)."""
    env = {"WANDB_RUN_GROUP": spec.name, "WANDB_JOB_TYPE": "sweep"}
    started: dict[int, float] = {}

    def todo() -> Iterator[Job | object]:  # object: WAIT
        # prepared as a slot frees: W&B's engine proposes each run given the runs
        # finished and running by then (a Bayesian search learns from them)
        for k in range(count):
            while waits(spec, k, state["runs"]):  # it reads a running entry's run directory
                yield WAIT
            prepared = _prepare_run(
                spec, k, state, sweep_dir, count=count, seed=seed, overrides=overrides, log=log
            )
            if prepared is not None:
                entry, argv, _ = prepared
                log_file = sweep_dir / "logs" / f"{entry['name']}.log"
                yield Job(key=k, argv=argv, log_file=log_file, env=env)

    def start(job: Job) -> None:
        state["runs"][job.key]["status"] = "running"
        started[job.key] = time.monotonic()
        _save_state(sweep_dir, state)

    def done(job: Job, status: int) -> None:
        entry = state["runs"][job.key]
        run_dir = _latest_version(sweep_dir / entry["name"])
        result = RunResult.from_run_dir(run_dir) if status == 0 and run_dir else None
        if status != 0:
            log(f"lbp sweep: {entry['name']} failed (exit status {status}); see {job.log_file}")
        _record(entry, result, started[job.key], sweep_dir)
        _save_state(sweep_dir, state)
        write_tables(spec, state["runs"][:count], sweep_dir)
        log(f"lbp sweep: {entry['name']} {entry['status']}")

    try:
        run_jobs(todo(), jobs, start, done)
    except BaseException:
        for entry in state["runs"]:
            if entry["status"] in ("running", "pending"):
                entry["status"] = "interrupted"
                if entry["index"] in started:
                    entry["seconds"] = _seconds(entry, started[entry["index"]])
        _save_state(sweep_dir, state)
        raise


def run_sweep(
    sweep_file: str | Path,
    *,
    count: int | None = None,
    out_dir: str | Path = "runs",
    seed: int = 0,
    overrides: list[str] | None = None,
    jobs: int = 1,
    log: Callable[[str], Any] = print,
) -> Path:
    """Run (or resume) a sweep locally; returns the sweep directory (module docstring).

    Args:
        sweep_file: a W&B sweep file.
        count: total number of runs of the sweep (runs ``run-0`` .. ``run-<count-1>``);
            default: the whole grid, or ``run_cap`` of a random sweep.
        out_dir: parent of the sweep directory.
        seed: seed of the engine's random draws (run k's proposal is seeded from
            ``(seed, k)``).
        overrides: extra ``lbp`` options for every run, put before the swept
            parameters (so a swept parameter always wins), e.g. ``--data.root DIR``.
        jobs: runs at a time; above 1 each run is its own process, its output in
            ``logs/<name>.log`` (:mod:`lbp_motion.pipelines.sweep_jobs`).
        log: where progress lines go.
    """
    spec = load_sweep(sweep_file)
    count = _run_count(spec, count, sweep_file, log)
    overrides = list(overrides or [])
    sweep_dir = Path(out_dir) / spec.name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    state = _open_state(spec, sweep_dir, sweep_file, seed=seed, overrides=overrides, log=log)
    if jobs < 1:
        raise ConfigError(f"lbp sweep: --jobs {jobs}; expected at least 1")
    if jobs > 1:
        _run_in_processes(
            spec, state, sweep_dir, count=count, seed=seed, overrides=overrides, jobs=jobs, log=log
        )
    for k in range(count if jobs == 1 else 0):
        _run_one(spec, k, state, sweep_dir, count=count, seed=seed, overrides=overrides, log=log)
    write_tables(spec, state["runs"][:count], sweep_dir)
    if spec.runs is not None and any("group" in r for r in spec.runs):
        write_seed_summary(spec, state["runs"][:count], sweep_dir)
    return sweep_dir
