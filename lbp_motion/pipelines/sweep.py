"""Hyper-parameter sweeps: ``lbp sweep FILE [--count N]`` runs a Weights & Biases sweep
file locally, without a W&B server.

The sweep file is W&B's own format (``wandb sweep FILE`` + ``wandb agent`` run it
unchanged when online). The local runner reads the same fields:

* ``method``: ``grid`` (every combination, in file order) or ``random`` (seeded);
  ``bayes`` needs the W&B server and falls back to ``random`` with a note;
* ``metric``: ``name`` (a key of ``metrics.json``, e.g. ``val/f1_macro``) and ``goal``
  (``maximize`` or ``minimize``, W&B's default) that order the results table;
* ``parameters``: per dotted ``lbp`` option (``model.init_args.lr``) a ``value``,
  ``values`` (optionally with ``probabilities``) or a ``distribution``
  (:data:`DISTRIBUTIONS`; without one, ``min``/``max`` mean ``int_uniform`` when both
  are integers, else ``uniform``);
* ``command`` (default ``${env} ${interpreter} ${program} ${args}``) and ``program``:
  the command must run ``lbp`` (``lbp``, a path ending in ``/lbp``, or
  ``python -m lbp_motion.cli``) and contain ``${args}`` (``--key=value``, as the W&B
  agent passes them) or ``${args_no_equals}`` (``--key value``);
* ``run_cap``: the default ``--count`` of a random sweep.

Layout of the sweep directory ``<out_dir>/<sweep name>/``::

    sweep.yaml            a copy of the sweep file
    state.json            per run: parameters, status, run directory, metrics
                          (rewritten atomically after every change)
    run-<k>/version_<n>/  run k's ordinary ``lbp fit`` run directory
    results.csv           every run: parameters and final metrics, best first
    results.md            the same as a Markdown table (the main metrics only)

A run whose status is ``finished`` is never run again: rerunning the same command
resumes an interrupted sweep; a larger ``--count`` extends it.

A run list (``kind: run_list``: ``runs`` of ``name``, ``config``, ``overrides``, e.g.
PLAAN's comparisons in ``experiments/emopain/sweeps/``) runs the same way, one
``lbp fit --config CONFIG OVERRIDES`` per entry, in ``<name>/version_<n>/``, ranked by
its ``metric`` (default ``test/mcc``, maximised).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lbp_motion.atomic import atomic_write, write_json, write_text
from lbp_motion.errors import ConfigError
from lbp_motion.interrupts import Interrupted
from lbp_motion.runs import run_arguments

DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
#: Distributions of W&B sweep parameters that the local runner samples.
DISTRIBUTIONS = (
    "constant", "categorical", "int_uniform", "uniform", "q_uniform",
    "log_uniform", "log_uniform_values", "q_log_uniform", "q_log_uniform_values",
    "inv_log_uniform", "inv_log_uniform_values",
    "normal", "q_normal", "log_normal", "q_log_normal", "beta", "q_beta",
)  # fmt: skip
METHODS = ("grid", "random", "bayes")
STATE_FILE = "state.json"
#: Metrics shown in results.md besides the sweep's own metric (when the runs have them).
TABLE_METRICS = (
    "val/f1_macro",
    "val/accuracy",
    "test/accuracy",
    "test/f1_macro",
    "test/mcc",
    "test/recording_accuracy",
)
_ENVVAR = re.compile(r"\$\{envvar:([A-Z0-9_]*)\}")


@dataclass
class SweepSpec:
    """A parsed sweep file.

    Attributes:
        name: the sweep's ``name`` (default: the file's stem); also its directory name.
        method: ``grid``, ``random`` or ``bayes``.
        metric: the metric to optimise (a ``metrics.json`` key), ``None`` if not given.
        goal: ``maximize`` or ``minimize``.
        parameters: dotted option -> W&B parameter spec, in file order.
        lbp_args: the command's ``lbp`` arguments with ``${args}`` left as the string
            ``"${args}"`` (or ``"${args_no_equals}"``), e.g.
            ``["fit", "--config", "experiments/quickstart.yaml", "${args}"]``.
        run_cap: W&B's ``run_cap`` (maximum number of runs), if given.
        path: the file it came from.
    """

    name: str
    method: str
    metric: str | None
    goal: str
    parameters: dict[str, dict[str, Any]]
    lbp_args: list[str]
    run_cap: int | None = None
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    #: a run list's runs (``name``, ``config``, ``overrides``); None for a W&B sweep
    runs: list[dict[str, Any]] | None = None

    def fingerprint(self) -> str:
        """A hash of what decides the runs (method, parameters, command)."""
        key = json.dumps(
            [self.method, self.parameters, self.lbp_args, self.runs], sort_keys=True, default=str
        )
        return hashlib.sha256(key.encode()).hexdigest()[:16]


# -- parsing -------------------------------------------------------------------------------
def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a W&B sweep file; raises :class:`ConfigError` naming the field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ConfigError(f"sweep file {path}: not valid YAML{at}: {problem}") from None
    return parse_sweep(raw, source=path)


def parse_run_list(raw: dict[str, Any], source: str | Path = "<run list>") -> SweepSpec:
    """A run list (``kind: run_list``: ``runs`` of ``name``, ``config``, ``overrides``;
    optional ``metric``, default ``test/mcc``, maximised) as a sweep whose runs are
    the list's entries, in order; each is ``lbp fit --config CONFIG OVERRIDES...``."""
    where = f"run list {source}"
    runs = raw.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ConfigError(f"{where}: runs must be a non-empty list of name, config, overrides")
    checked, names = [], set()
    for i, run in enumerate(runs):
        if not isinstance(run, dict) or not isinstance(run.get("config"), str):
            raise ConfigError(
                f"{where}: runs[{i}] must be a mapping with a config (and name, overrides)"
            )
        name = str(run.get("name") or f"run-{i}")
        overrides = run.get("overrides") or []
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name) or name in names:
            raise ConfigError(
                f"{where}: runs[{i}].name {name!r}: expected a unique name of letters, digits, '.', '_', '-'"
            )
        if not isinstance(overrides, list) or not all(isinstance(a, str) for a in overrides):
            raise ConfigError(f"{where}: runs[{i}].overrides must be a list of strings")
        names.add(name)
        checked.append({"name": name, "config": run["config"], "overrides": list(overrides)})
    metric = raw.get("metric") or {"name": "test/mcc", "goal": "maximize"}
    if (
        not isinstance(metric, dict)
        or "name" not in metric
        or metric.get("goal", "maximize") not in ("maximize", "minimize")
    ):
        raise ConfigError(
            f"{where}: metric must be a mapping with a name and goal maximize or minimize"
        )
    return SweepSpec(
        name=str(
            raw.get("name") or ("runs" if str(source).startswith("<") else Path(str(source)).stem)
        ),
        method="grid",
        metric=metric["name"],
        goal=metric.get("goal", "maximize"),
        parameters={
            "config": {"distribution": "categorical", "values": [r["config"] for r in checked]},
            "overrides": {
                "distribution": "categorical",
                "values": [" ".join(r["overrides"]) for r in checked],
            },
        },
        lbp_args=["fit", "${args}"],
        path=Path(source) if not str(source).startswith("<") else None,
        raw=raw,
        runs=checked,
    )


def parse_sweep(raw: Any, source: str | Path = "<sweep>") -> SweepSpec:
    """Check a sweep config (the mapping of a W&B sweep file) and return its spec; a run
    list (``kind: run_list``, :func:`parse_run_list`) is read as a sweep of its runs."""
    where = f"sweep file {source}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with method, parameters and command")
    if raw.get("kind") == "run_list":
        return parse_run_list(raw, source)
    method = raw.get("method")
    if method not in METHODS:
        raise ConfigError(f"{where}: method {method!r}; expected one of {', '.join(METHODS)}")
    metric = raw.get("metric") or {}
    if not isinstance(metric, dict) or (metric and "name" not in metric):
        raise ConfigError(f"{where}: metric must be a mapping with a name (and goal)")
    goal = metric.get("goal", "minimize")
    if goal not in ("maximize", "minimize"):
        raise ConfigError(f"{where}: metric.goal {goal!r}; expected maximize or minimize")
    params = raw.get("parameters")
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"{where}: parameters must be a non-empty mapping of option -> spec")
    parameters = {}
    for key, spec in params.items():
        parameters[str(key)] = _check_parameter(str(key), spec, where)
    if method == "grid":
        for key, spec in parameters.items():
            grid_values(key, spec, where)  # raises for continuous distributions
    run_cap = raw.get("run_cap")
    if run_cap is not None and (not isinstance(run_cap, int) or run_cap < 1):
        raise ConfigError(f"{where}: run_cap {run_cap!r}; expected a positive integer")
    name = str(
        raw.get("name") or ("sweep" if str(source).startswith("<") else Path(str(source)).stem)
    )
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ConfigError(
            f"{where}: name {name!r}; expected letters, digits, '.', '_' or '-' (it names a folder)"
        )
    return SweepSpec(
        name=name,
        method=method,
        metric=metric.get("name"),
        goal=goal,
        parameters=parameters,
        lbp_args=lbp_arguments(raw.get("command") or DEFAULT_COMMAND, raw.get("program"), where),
        run_cap=run_cap,
        path=Path(source) if not str(source).startswith("<") else None,
        raw=raw,
    )


def _check_parameter(key: str, spec: Any, where: str) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise ConfigError(
            f"{where}: parameters.{key} must be a mapping (value, values or distribution)"
        )
    if "parameters" in spec:
        raise ConfigError(
            f"{where}: parameters.{key}: nested parameters are not supported; name the option with a dotted key"
        )
    spec = dict(spec)
    if "distribution" not in spec:
        if "value" in spec:
            spec["distribution"] = "constant"
        elif "values" in spec:
            spec["distribution"] = "categorical"
        elif "min" in spec and "max" in spec:
            both_int = all(
                isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max")
            )
            spec["distribution"] = "int_uniform" if both_int else "uniform"
        else:
            raise ConfigError(
                f"{where}: parameters.{key}: expected value, values, min/max or a distribution"
            )
    dist = spec["distribution"]
    if dist not in DISTRIBUTIONS:
        raise ConfigError(
            f"{where}: parameters.{key}: distribution {dist!r} is not one of {', '.join(DISTRIBUTIONS)}"
        )
    needs = {
        "constant": ("value",), "categorical": ("values",),
        "beta": ("a", "b"), "q_beta": ("a", "b"),
    }.get(dist, () if "normal" in dist else ("min", "max"))  # fmt: skip
    missing = [k for k in needs if k not in spec]
    if missing:
        raise ConfigError(
            f"{where}: parameters.{key}: distribution {dist} needs {' and '.join(missing)}"
        )
    if dist == "categorical":
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: parameters.{key}.values must be a non-empty list")
        probs = spec.get("probabilities")
        if probs is not None and (
            len(probs) != len(values) or not math.isclose(sum(probs), 1.0, abs_tol=1e-6)
        ):
            raise ConfigError(
                f"{where}: parameters.{key}.probabilities must have one entry per value and sum to 1"
            )
    if "min" in needs:
        lo, hi = spec["min"], spec["max"]
        if (
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi))
            or lo > hi
        ):
            raise ConfigError(
                f"{where}: parameters.{key}: min {lo!r} and max {hi!r} must be numbers with min <= max"
            )
        if dist.endswith("_values") and lo <= 0:
            raise ConfigError(f"{where}: parameters.{key}: {dist} needs min > 0, got {lo!r}")
    return spec


def lbp_arguments(command: Any, program: Any, where: str) -> list[str]:
    """The ``lbp`` arguments of a sweep ``command``: what follows ``lbp`` (or
    ``python -m lbp_motion.cli``), with ``${envvar:NAME}`` filled in and ``${args}``
    kept as a placeholder. ``${env}`` and ``${interpreter}`` in front are dropped;
    ``${program}`` stands for ``program``."""
    if not isinstance(command, list) or not command:
        raise ConfigError(f"{where}: command must be a list of strings")
    tokens = []
    for token in command:
        token = _ENVVAR.sub(lambda m: os.environ.get(m.group(1), m.group(1)), str(token))
        if token == "${program}":
            if not program:
                raise ConfigError(f"{where}: command uses ${{program}} but there is no program")
            tokens.append(str(program))
        else:
            tokens.append(token)
    start = None
    for i, token in enumerate(tokens):
        if token == "lbp" or token.endswith("/lbp"):
            start = i + 1
            break
        if (
            token == "-m"
            and i + 1 < len(tokens)
            and tokens[i + 1] in ("lbp_motion.cli", "lbp_motion")
        ):
            start = i + 2
            break
    if start is None:
        raise ConfigError(
            f"{where}: command {' '.join(tokens)!r} does not run lbp; expected e.g. "
            "[${env}, lbp, fit, --config, BASE.yaml, ${args}]"
        )
    args = tokens[start:]
    macros = [t for t in args if t.startswith("${") and t.endswith("}")]
    unsupported = [t for t in macros if t not in ("${args}", "${args_no_equals}")]
    if unsupported:
        raise ConfigError(
            f"{where}: command macro {unsupported[0]} cannot pass options to lbp; use ${{args}} (--key=value)"
        )
    if len(macros) != 1:
        raise ConfigError(
            f"{where}: command must contain ${{args}} exactly once, where the parameters go"
        )
    if not args or args[0].startswith("-") or args[0] in macros:
        raise ConfigError(f"{where}: command must name an lbp subcommand (fit) before its options")
    return args


# -- parameter values ----------------------------------------------------------------------
def _quantize(x: float, q: Any) -> Any:
    q = 1 if q is None else q
    value = round(x / q) * q
    return int(round(value)) if isinstance(q, int) else float(value)


def sample_value(spec: dict[str, Any], rng: np.random.Generator) -> Any:
    """One value drawn from a W&B parameter spec (see W&B's sweep configuration
    options: ``log_uniform`` takes natural-log bounds, ``*_values`` the values
    themselves; ``q_*`` round to multiples of ``q``, an integer ``q`` gives integers)."""
    dist = spec["distribution"]
    lo, hi, q = spec.get("min"), spec.get("max"), spec.get("q")
    mu, sigma = spec.get("mu", 0.0), spec.get("sigma", 1.0)
    if dist == "constant":
        return spec["value"]
    if dist == "categorical":
        values = spec["values"]
        return values[int(rng.choice(len(values), p=spec.get("probabilities")))]
    if dist == "int_uniform":
        return int(rng.integers(int(lo), int(hi), endpoint=True))
    if dist in ("uniform", "q_uniform"):
        x = float(rng.uniform(lo, hi))
        return _quantize(x, q) if dist == "q_uniform" else x
    if dist in ("log_uniform", "q_log_uniform"):
        x = float(math.exp(rng.uniform(lo, hi)))
        return _quantize(x, q) if dist.startswith("q_") else x
    if dist in ("log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values"):
        x = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        return _quantize(x, q) if dist.startswith("q_") else x
    if dist == "inv_log_uniform":
        return float(math.exp(-rng.uniform(lo, hi)))
    if dist in ("normal", "q_normal"):
        x = float(rng.normal(mu, sigma))
        return _quantize(x, q) if dist.startswith("q_") else x
    if dist in ("log_normal", "q_log_normal"):
        x = float(math.exp(rng.normal(mu, sigma)))
        return _quantize(x, q) if dist.startswith("q_") else x
    if dist in ("beta", "q_beta"):
        x = float(rng.beta(spec["a"], spec["b"]))
        return _quantize(x, q) if dist.startswith("q_") else x
    raise ConfigError(
        f"distribution {dist!r} is not supported"
    )  # pragma: no cover (checked when parsed)


def grid_values(key: str, spec: dict[str, Any], where: str = "sweep file") -> list[Any]:
    """The values a grid search tries for one parameter: ``value``, ``values``, every
    integer of an ``int_uniform`` range, or every multiple of ``q`` of a ``q_uniform``."""
    dist = spec["distribution"]
    if dist == "constant":
        return [spec["value"]]
    if dist == "categorical":
        return list(spec["values"])
    if dist == "int_uniform":
        return list(range(int(spec["min"]), int(spec["max"]) + 1))
    if dist == "q_uniform":
        q = spec.get("q", 1)
        start = math.ceil(spec["min"] / q)
        return [_quantize(k * q, q) for k in range(start, math.floor(spec["max"] / q) + 1)]
    raise ConfigError(
        f"{where}: parameters.{key}: a grid search needs values, value, int_uniform or q_uniform, not {dist}"
    )


def grid_size(spec: SweepSpec) -> int:
    if spec.runs is not None:
        return len(spec.runs)
    return math.prod(len(grid_values(k, p)) for k, p in spec.parameters.items())


def run_parameters(spec: SweepSpec, k: int, seed: int = 0) -> dict[str, Any]:
    """The parameters of run ``k`` (0-based). Grid: the k-th combination (the last
    parameter varies fastest); random (and bayes): drawn from a generator seeded with
    ``(seed, k)``, so run k gets the same values however often the sweep resumes."""
    if spec.runs is not None:
        run = spec.runs[k]
        return {"config": run["config"], "overrides": " ".join(run["overrides"])}
    if spec.method == "grid":
        axes = [grid_values(key, p) for key, p in spec.parameters.items()]
        combos = product(*axes)
        for i, combo in enumerate(combos):
            if i == k:
                return dict(zip(spec.parameters, combo))
        raise IndexError(f"grid run {k}: the grid has only {grid_size(spec)} combinations")
    rng = np.random.default_rng([seed, k])
    return {key: sample_value(p, rng) for key, p in spec.parameters.items()}


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


# -- results -------------------------------------------------------------------------------
def _metric_sort_key(spec: SweepSpec, row: dict[str, Any]) -> tuple:
    value = (row.get("metrics") or {}).get(spec.metric) if spec.metric else None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return (1, 0.0, row["index"])
    return (0, -value if spec.goal == "maximize" else value, row["index"])


def ranked_runs(spec: SweepSpec, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs best first by the sweep's metric and goal; runs without the metric (failed
    or unfinished) last, in run order."""
    return sorted(runs, key=lambda r: _metric_sort_key(spec, r))


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if (abs(value) < 1e-3 and value != 0) else f"{value:.4f}"
    return "" if value is None else str(value)


def write_tables(
    spec: SweepSpec, runs: list[dict[str, Any]], sweep_dir: Path
) -> list[dict[str, Any]]:
    """Write results.csv (all scalar metrics) and results.md (main metrics); returns
    the runs best first."""
    ranked = ranked_runs(spec, runs)
    params = list(spec.parameters)
    metric_keys = sorted(
        {
            k
            for r in ranked
            for k, v in (r.get("metrics") or {}).items()
            if isinstance(v, (int, float)) and "/" in k
        }
    )
    if spec.metric in metric_keys:
        metric_keys.remove(spec.metric)
        metric_keys.insert(0, spec.metric)
    fields = ["rank", "run", "status", *params, *metric_keys, "run_dir"]

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(fields)
            for rank, r in enumerate(ranked, 1):
                m = r.get("metrics") or {}
                w.writerow(
                    [
                        rank,
                        r["name"],
                        r["status"],
                        *(r["params"].get(p) for p in params),
                        *(m.get(k) for k in metric_keys),
                        r.get("run_dir") or "",
                    ]
                )

    atomic_write(sweep_dir / "results.csv", write_csv)
    shown = [
        k for k in ([spec.metric] if spec.metric else []) + list(TABLE_METRICS) if k in metric_keys
    ]
    shown = list(dict.fromkeys(shown))
    lines = [
        f"# Sweep {spec.name}: {len(ranked)} runs, {spec.method} search"
        + (f", best first by {spec.metric} ({spec.goal})" if spec.metric else ""),
        "",
        "| rank | run | status | " + " | ".join([*params, *shown]) + " |",
        "|" + "---|" * (3 + len(params) + len(shown)),
    ]
    for rank, r in enumerate(ranked, 1):
        m = r.get("metrics") or {}
        cells = [
            str(rank),
            r["name"],
            r["status"],
            *(format_value(r["params"].get(p)) for p in params),
            *(format_value(m.get(k)) for k in shown),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    write_text(sweep_dir / "results.md", "\n".join(lines) + "\n")
    return ranked


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
    versions = [p for p in run_parent.glob("version_*") if p.name.split("_")[1].isdigit()]
    return max(versions, key=lambda p: int(p.name.split("_")[1])) if versions else None


def run_sweep(
    sweep_file: str | Path,
    *,
    count: int | None = None,
    out_dir: str | Path = "runs",
    seed: int = 0,
    overrides: list[str] | None = None,
    log: Callable[[str], Any] = print,
) -> Path:
    """Run (or resume) a sweep locally; returns the sweep directory (module docstring).

    Args:
        sweep_file: a W&B sweep file.
        count: total number of runs of the sweep (runs ``run-0`` .. ``run-<count-1>``);
            default: the whole grid, or ``run_cap`` of a random sweep.
        out_dir: parent of the sweep directory.
        seed: seed of random search (run k draws from ``(seed, k)``).
        overrides: extra ``lbp`` options for every run, put before the swept
            parameters (so a swept parameter always wins), e.g. ``--data.root DIR``.
        log: where progress lines go.
    """
    spec = load_sweep(sweep_file)
    if spec.method == "bayes":
        log("lbp sweep: note: Bayesian search needs the W&B server; running random search instead")
    if spec.raw.get("early_terminate"):
        log("lbp sweep: note: early_terminate needs the W&B server; every run goes to its end")
    if count is None:
        if spec.method == "grid":
            count = grid_size(spec)
        elif spec.run_cap:
            count = spec.run_cap
        else:
            raise ConfigError(
                f"sweep file {sweep_file}: a {spec.method} search needs --count N (or run_cap in the file)"
            )
    if count < 1:
        raise ConfigError(f"--count {count}: expected a positive number of runs")
    if spec.method == "grid" and count > grid_size(spec):
        log(
            f"lbp sweep: note: the grid has {grid_size(spec)} combinations; running those, not {count}"
        )
        count = grid_size(spec)

    sweep_dir = Path(out_dir) / spec.name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    state_path = sweep_dir / STATE_FILE
    if state_path.is_file():
        state = json.loads(state_path.read_text())
        if state.get("fingerprint") != spec.fingerprint() or state.get("seed") != seed:
            raise ConfigError(
                f"sweep directory {sweep_dir} holds a sweep with other parameters, command or seed; "
                "delete it or give the sweep another name (the file's name field)"
            )
        if state.get("overrides") != list(overrides or []):
            log(
                f"lbp sweep: note: the runs before were started with the options {state.get('overrides')}, "
                f"the runs from now on with {list(overrides or [])}"
            )
            state["overrides"] = list(overrides or [])
    else:
        state = {
            "sweep": spec.name,
            "sweep_file": str(sweep_file),
            "method": spec.method,
            "seed": seed,
            "metric": spec.metric,
            "goal": spec.goal,
            "fingerprint": spec.fingerprint(),
            "overrides": list(overrides or []),
            "runs": [],
        }
        shutil.copyfile(sweep_file, sweep_dir / "sweep.yaml")
    runs: list[dict[str, Any]] = state["runs"]

    def save() -> None:
        write_json(state_path, state)

    overrides = list(overrides or [])
    for k in range(count):
        name = spec.runs[k]["name"] if spec.runs is not None else f"run-{k}"
        if k < len(runs) and runs[k]["status"] == "finished":
            log(f"lbp sweep: {name} finished before; skipping")
            continue
        params = run_parameters(spec, k, seed)
        entry = {
            "index": k,
            "name": name,
            "params": params,
            "status": "running",
            "run_dir": None,
            "metrics": None,
        }
        if k < len(runs):
            runs[k] = entry
        else:
            runs.append(entry)
        save()
        args = command_for(spec, params)
        argv = [
            *command_for(spec, params, ["--run.wandb", "offline", *overrides]),
            "--run.out_dir",
            str(sweep_dir),
            "--trainer.default_root_dir",
            str(sweep_dir),
            "--run.name",
            name,
        ]
        log(f"lbp sweep: {name} ({k + 1}/{count}): " + describe(spec, params))
        started = time.monotonic()
        result = None
        try:
            with _environment(WANDB_RUN_GROUP=spec.name, WANDB_JOB_TYPE="sweep"):
                result = run_arguments(argv)
        except Interrupted:  # recorded, so that the resumed sweep runs it again
            entry["status"] = "interrupted"
            save()
            raise
        except SystemExit as exc:  # the argument parser rejected the run's arguments
            entry["status"] = "failed"
            save()
            raise ConfigError(
                f"sweep {spec.name}, {name}: lbp rejected the arguments {' '.join(args)} (exit status {exc.code})"
            ) from None
        except Exception as exc:  # a failed run does not stop the sweep, as with wandb agent
            log(f"lbp sweep: {name} failed: {type(exc).__name__}: {exc}")
        if result is not None and result.metrics:
            entry.update(
                status="finished",
                run_dir=str(result.run_dir),
                metrics=result.metrics,
                seconds=round(time.monotonic() - started, 1),
            )
        else:
            run_dir = result.run_dir if result is not None else _latest_version(sweep_dir / name)
            entry.update(status="failed", run_dir=str(run_dir) if run_dir else None)
        save()
        write_tables(spec, runs[:count], sweep_dir)

    write_tables(spec, runs[:count], sweep_dir)
    return sweep_dir


def best_run(spec: SweepSpec, runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best finished run of a sweep's ``state.json`` runs by its metric, or None."""
    ranked = [r for r in ranked_runs(spec, runs) if r["status"] == "finished"]
    return ranked[0] if ranked else None
