"""The summary of a seeded run list (``seeds:``): mean ± sd per entry over its seeds,
in ``summary.md`` and ``summary.json`` of the sweep directory."""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path
from typing import Any

from lbp_motion.atomic import write_json, write_text
from lbp_motion.pipelines.sweep_spec import SweepSpec

#: results per site and of personalised models (lbp_motion.evaluation.sites) that a
#: seeded run list's summary adds when its runs have them
SITE_SUMMARY = (
    "test/site/*/accuracy",
    "test/site/*/mcc",
    "test/personalised/accuracy",
    "test/personalised/mcc",
    "test/personalised/site/*/accuracy",
)
#: Metrics shown in results.md besides the sweep's own metric (when the runs have them);
#: a seeded run list's summary has their test ones.
TABLE_METRICS = (
    "val/f1_macro",
    "val/accuracy",
    "test/accuracy",
    "test/f1_macro",
    "test/mcc",
    "test/recording_accuracy",
)


def seed_summary(spec: SweepSpec, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A seeded run list's entries in file order: ``group``, the finished ``seeds``, and
    per metric (the sweep's metric, :data:`TABLE_METRICS` (test metrics only) and those of
    :data:`SITE_SUMMARY` that runs have; test metrics only)
    ``mean`` and ``sd`` (sample sd; 0 with one seed) over the finished seeds."""
    group_of = {r["name"]: r["group"] for r in spec.runs or [] if "group" in r}
    by_group: dict[str, list[dict[str, Any]]] = {}
    for r in spec.runs or []:
        by_group.setdefault(r["group"], [])
    for r in runs:
        if r.get("status") == "finished" and r["name"] in group_of:
            by_group[group_of[r["name"]]].append(r.get("metrics") or {})
    found = sorted({k for r in runs for k in (r.get("metrics") or {})})
    by_site = [k for pattern in SITE_SUMMARY for k in fnmatch.filter(found, pattern)]
    keys = [
        k
        for k in dict.fromkeys([spec.metric, *TABLE_METRICS, *by_site])
        if k and k.startswith("test/")
    ]
    rows = []
    for group, metrics in by_group.items():
        row: dict[str, Any] = {"group": group, "seeds": len(metrics)}
        for key in keys:
            values = [float(m[key]) for m in metrics if isinstance(m.get(key), (int, float))]
            if values:
                mean = sum(values) / len(values)
                var = sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)
                row[key] = {"mean": mean, "sd": math.sqrt(var), "n": len(values)}
        rows.append(row)
    return rows


def write_seed_summary(spec: SweepSpec, runs: list[dict[str, Any]], sweep_dir: Path) -> None:
    """``summary.md`` and ``summary.json``: :func:`seed_summary` as a table of
    ``mean ± sd`` per run-list entry, in the list's order."""
    rows = seed_summary(spec, runs)
    keys = [k for k in dict.fromkeys(k for row in rows for k in row if "/" in k)]
    lines = [
        f"# {spec.name}: mean ± sd over seeds",
        "",
        "| run | seeds | " + " | ".join(keys) + " |",
        "|" + "---|" * (2 + len(keys)),
    ]
    for row in rows:
        cells = [f"{row[k]['mean']:.4f} ± {row[k]['sd']:.4f}" if k in row else "-" for k in keys]
        lines.append(f"| {row['group']} | {row['seeds']} | " + " | ".join(cells) + " |")
    write_text(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    write_json(sweep_dir / "summary.json", rows)
