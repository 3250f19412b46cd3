"""What a report (:mod:`lbp_motion.pipelines.report`) is made of: sections of tables
(cells with the exact number behind the text) and figures; how numbers are shown; the
final-metrics and per-class tables of a ``metrics.json``."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Main metrics shown first and in the comparison of several runs.
MAIN_METRICS = (
    "accuracy",
    "f1_macro",
    "f1_weighted",
    "precision_weighted",
    "recall_weighted",
    "mcc",
    "recording_accuracy",
    "recording_f1_macro",
    "recording_mcc",
    "loss",
)
STAGE_ORDER = ("val", "final_val", "test")


@dataclass
class Cell:
    """A table cell: ``text`` as shown; ``value`` the exact number behind it, if any."""

    text: str
    value: float | None = None


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    note: str = ""


@dataclass
class Figure:
    title: str
    file: str  # relative to the report
    caption: str = ""


@dataclass
class Section:
    """One run directory in the report."""

    name: str
    path: str
    kind: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    config: str | None = None
    notes: list[str] = field(default_factory=list)


def fmt(value: Any) -> str:
    """How numbers appear in the report: 4 decimals (``n/a`` for missing / non-finite)."""
    if value is None or isinstance(value, bool):
        return "n/a" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else "n/a"
    return str(value)


def num(value: Any) -> Cell:
    v = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return Cell(fmt(value), v)


def text(value: Any) -> Cell:
    return Cell("" if value is None else str(value))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _float(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def split_metrics(
    metrics: dict[str, Any],
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, float]]]]:
    """``metrics.json`` keys into ``overall[stage][metric]`` (``<stage>/<metric>``) and
    ``per_class[stage][class][metric]`` (``<stage>/<metric>/<class>``)."""
    overall: dict[str, dict[str, float]] = {}
    per_class: dict[str, dict[str, dict[str, float]]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if (
            len(parts) < 2
            or not (value is None or isinstance(value, (int, float)))
            or isinstance(value, bool)
        ):
            continue
        stage = parts[0]
        if len(parts) == 2:
            overall.setdefault(stage, {})[parts[1]] = value
        elif len(parts) == 3:
            per_class.setdefault(stage, {}).setdefault(parts[2], {})[parts[1]] = value
    return overall, per_class


def _stages(keys) -> list[str]:
    return sorted(
        keys, key=lambda s: (STAGE_ORDER.index(s) if s in STAGE_ORDER else len(STAGE_ORDER), s)
    )


def _metric_order(names) -> list[str]:
    return sorted(
        names, key=lambda m: (MAIN_METRICS.index(m) if m in MAIN_METRICS else len(MAIN_METRICS), m)
    )


def metrics_tables(
    metrics: dict[str, Any], title_prefix: str = "", classes: list[str] | None = None
) -> list[Table]:
    """The final-metrics table (metric x stage) and one per-class table per stage, its
    rows in the order of ``classes`` (the task's) where given, else by name."""
    overall, per_class = split_metrics(metrics)
    tables = []
    stages = _stages(overall)
    if stages:
        names = _metric_order({m for s in stages for m in overall[s]})
        rows = [
            [text(m), *(num(overall[s].get(m)) if m in overall[s] else text("") for s in stages)]
            for m in names
        ]
        tables.append(
            Table(
                f"{title_prefix}Final metrics",
                ["metric", *stages],
                rows,
                "val: the best checkpoint's validation; final_val: the last epoch's; "
                "test: the best checkpoint on the test split.",
            )
        )
    for stage in _stages(per_class):
        by_class = per_class[stage]
        order = list(classes or [])
        names = sorted({m for c in by_class.values() for m in c})
        rows = [
            [text(c), *(num(by_class[c].get(m)) for m in names)]
            for c in sorted(
                by_class, key=lambda c: (order.index(c) if c in order else len(order), c)
            )
        ]
        tables.append(Table(f"{title_prefix}Per class ({stage})", ["class", *names], rows))
    return tables
