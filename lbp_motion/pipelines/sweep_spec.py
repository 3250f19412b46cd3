"""Sweep files read and checked.

:func:`load_sweep` reads a Weights & Biases sweep file (or a run list, ``kind:
run_list``) into a :class:`SweepSpec`, raising :class:`~lbp_motion.errors.ConfigError`
that names the field at fault. Parameters and ``early_terminate`` are checked against
W&B's own schema by W&B's sweep engine (:mod:`lbp_motion.pipelines.sweep_engine`),
which also chooses each run's parameters; :mod:`lbp_motion.pipelines.sweep` runs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lbp_motion.errors import ConfigError
from lbp_motion.pipelines.sweep_engine import (
    check_early_terminate,
    grid_size,
    schema_violations,
)

DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
METHODS = ("grid", "random", "bayes")
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
        early_terminate: W&B's ``early_terminate`` (hyperband), if given.
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
    early_terminate: dict[str, Any] | None = None
    #: a run list's ``columns``: the metrics results.md shows (default: TABLE_METRICS)
    columns: list[str] | None = None
    #: a run list's runs (``name``, ``config``, ``overrides``, and with ``seeds`` the
    #: entry's ``group`` and ``seed``); None for a W&B sweep
    runs: list[dict[str, Any]] | None = None

    def fingerprint(self) -> str:
        """A hash of what decides the runs (method, parameters, command, and the
        early termination that the runs' callback reads from the sweep's copy of the file)."""
        parts = [self.method, self.parameters, self.lbp_args, self.runs]
        if self.early_terminate:
            parts.append(self.early_terminate)
        key = json.dumps(parts, sort_keys=True, default=str)
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


def run_list_seeds(raw: dict[str, Any], where: str) -> list[int]:
    """A run list's ``seeds`` (a list of distinct integers; empty when absent)."""
    seeds = raw.get("seeds")
    if seeds is None:
        return []
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise ConfigError(f"{where}: seeds={seeds!r}; expected a list of distinct integers")
    return list(seeds)


#: ``{run_dir:NAME}`` in a run list's overrides: the run directory of the earlier entry
#: NAME, filled in when NAME has finished (the entry waits for it)
RUN_DIR = re.compile(r"\{run_dir:([A-Za-z0-9_.\-]+)\}")


def run_needs(overrides: list[str]) -> list[str]:
    """The entries whose run directories ``overrides`` read (``{run_dir:NAME}``), in order."""
    return list(dict.fromkeys(m for a in overrides for m in RUN_DIR.findall(a)))


def seeded_runs(runs: list[dict[str, Any]], seeds: list[int]) -> list[dict[str, Any]]:
    """Each run once per seed, named ``<name>-seed<s>``: ``{seed}`` in its overrides is
    replaced by the seed (and ``{run_dir:NAME}`` reads the same seed's ``NAME``), and
    without ``{seed}`` ``--seed_everything <s>`` is added."""
    out = []
    for run in runs:
        for seed in seeds:
            overrides = [
                RUN_DIR.sub(rf"{{run_dir:\1-seed{seed}}}", a.replace("{seed}", str(seed)))
                for a in run["overrides"]
            ]
            if not any("{seed}" in a for a in run["overrides"]):
                overrides += ["--seed_everything", str(seed)]
            out.append(
                {
                    **run,
                    "name": f"{run['name']}-seed{seed}",
                    "overrides": overrides,
                    "needs": run_needs(overrides),
                    "group": run["name"],
                    "seed": seed,
                }
            )
    return out


def parse_run_list(raw: dict[str, Any], source: str | Path = "<run list>") -> SweepSpec:
    """A run list (``kind: run_list``: ``runs`` of ``name``, ``config``, ``overrides``;
    optional ``metric``, default ``test/mcc``, maximised; optional ``seeds``, each run
    once per seed (:func:`seeded_runs`), summarised as mean and sd over the seeds;
    optional ``columns``, the metrics ``results.md`` shows) as a sweep whose runs are
    the list's entries, in order; each is ``lbp fit --config CONFIG OVERRIDES...``.
    ``{run_dir:NAME}`` in an entry's overrides is the run directory of the earlier entry
    NAME (e.g. a checkpoint to start from): the entry starts once NAME has finished, and
    fails without running when NAME did not finish."""
    where = f"run list {source}"
    columns = raw.get("columns")
    if columns is not None and (
        not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns)
    ):
        raise ConfigError(f"{where}: columns={columns!r}; expected a list of metric names")
    runs = raw.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ConfigError(f"{where}: runs must be a non-empty list of name, config, overrides")
    seeds = run_list_seeds(raw, where)
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
        needs = run_needs(overrides)
        unknown = [n for n in needs if n not in names]
        if unknown:
            raise ConfigError(
                f"{where}: runs[{i}].overrides: {{run_dir:{unknown[0]}}} names no run listed "
                "before this one; a run can read the run directory of an earlier run only"
            )
        names.add(name)
        checked.append(
            {"name": name, "config": run["config"], "overrides": list(overrides), "needs": needs}
        )
    if seeds:
        checked = seeded_runs(checked, seeds)
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
                "values": [shlex.join(r["overrides"]) for r in checked],
            },
        },
        lbp_args=["fit", "${args}"],
        path=Path(source) if not str(source).startswith("<") else None,
        raw=raw,
        runs=checked,
        columns=columns,
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
    if method == "bayes" and not metric:
        raise ConfigError(f"{where}: method bayes needs metric.name (the metric it models)")
    params = raw.get("parameters")
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"{where}: parameters must be a non-empty mapping of option -> spec")
    parameters = {}
    for key, spec in params.items():
        parameters[str(key)] = _check_parameter(str(key), spec, method, where)
    run_cap = raw.get("run_cap")
    if run_cap is not None and (not isinstance(run_cap, int) or run_cap < 1):
        raise ConfigError(f"{where}: run_cap {run_cap!r}; expected a positive integer")
    early_terminate = raw.get("early_terminate")
    if early_terminate is not None and not isinstance(early_terminate, dict):
        raise ConfigError(f"{where}: early_terminate must be a mapping (type: hyperband, ...)")
    name = str(
        raw.get("name") or ("sweep" if str(source).startswith("<") else Path(str(source)).stem)
    )
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ConfigError(
            f"{where}: name {name!r}; expected letters, digits, '.', '_' or '-' (it names a folder)"
        )
    spec = SweepSpec(
        name=name,
        method=method,
        metric=metric.get("name"),
        goal=goal,
        parameters=parameters,
        lbp_args=lbp_arguments(raw.get("command") or DEFAULT_COMMAND, raw.get("program"), where),
        run_cap=run_cap,
        path=Path(source) if not str(source).startswith("<") else None,
        raw=raw,
        early_terminate=early_terminate,
    )
    if early_terminate is not None:
        check_early_terminate(spec, where)
    if method == "grid":
        grid_size(spec)  # the engine refuses continuous distributions in a grid
    return spec


def _check_parameter(key: str, spec: Any, method: str, where: str) -> dict[str, Any]:
    """One parameter, checked against W&B's schema (by the engine)."""
    if not isinstance(spec, dict):
        raise ConfigError(
            f"{where}: parameters.{key} must be a mapping (value, values or distribution)"
        )
    if "parameters" in spec:
        raise ConfigError(
            f"{where}: parameters.{key}: nested parameters are not supported; name the option with a dotted key"
        )
    try:
        violations = schema_violations({"method": method, "parameters": {key: spec}})
    except ValueError as err:
        violations = [str(err)]
    if violations:
        specific = [
            v
            for v in violations
            if "is not valid under any" not in v and "invalid hyperparameter" not in v
        ]
        detail = (
            specific[0]
            if specific
            else (
                "not a W&B parameter: expected value, values (with probabilities), min and max, "
                "or a distribution with its arguments"
            )
        )
        raise ConfigError(f"{where}: parameters.{key} {spec!r}: {detail}")
    return dict(spec)


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
