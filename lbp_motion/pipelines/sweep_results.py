"""A sweep's results: its runs ranked by the sweep's metric and goal, ``results.csv``
(every scalar metric) and ``results.md`` (the main metrics) of the sweep directory,
and the best run (:func:`best_run`, what ``lbp sweep`` prints at the end)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from lbp_motion.atomic import atomic_write, write_text
from lbp_motion.pipelines.sweep_engine import DONE
from lbp_motion.pipelines.sweep_spec import SweepSpec
from lbp_motion.pipelines.sweep_summary import TABLE_METRICS


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
    columns = spec.columns or list(TABLE_METRICS)
    shown = [k for k in ([spec.metric] if spec.metric else []) + columns if k in metric_keys]
    shown = list(dict.fromkeys(shown))
    lines = [
        f"# Sweep {spec.name}: {len(ranked)} runs, "
        + ("a run list" if spec.runs is not None else f"{spec.method} search")
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


def best_run(spec: SweepSpec, runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best finished run of a sweep's ``state.json`` runs by its metric, or None."""
    ranked = [r for r in ranked_runs(spec, runs) if r["status"] in DONE]
    return ranked[0] if ranked else None
