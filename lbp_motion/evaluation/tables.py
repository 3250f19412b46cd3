"""The model beside its baselines, from the keys of an ``lbp cv`` ``summary.json``
(docs/metrics.md): the rows and cells shared by ``summary.md`` and ``lbp report``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbp_motion.evaluation.baselines import BASELINES, TITLES
from lbp_motion.evaluation.bootstrap import METRICS

#: The metric of the one-line verdict per baseline when the run's monitor is not one of
#: :data:`METRICS` (the default ``run.monitor``, ``val/f1_macro``).
VERDICT_METRIC = "f1_macro"


def verdict_metric(summary: Mapping[str, Any]) -> str:
    """The metric the verdicts judge: the folds' model-selection monitor (``monitor``
    in the summary, e.g. ``val/recording_f1_macro``) when it is one of :data:`METRICS`,
    else :data:`VERDICT_METRIC`."""
    monitor = str(summary.get("monitor") or "").split("/", 1)[-1]
    return monitor if monitor in METRICS else VERDICT_METRIC


def _interval(ci: Any) -> str:
    return f" [{ci[0]:.4f}, {ci[1]:.4f}]" if isinstance(ci, list | tuple) and len(ci) == 2 else ""


def _cell(summary: Mapping[str, Any], key: str, signed: bool = False) -> str:
    value = summary.get(key)
    if value is None:
        return ""
    number = f"{value:+.4f}" if signed else f"{value:.4f}"
    ci = summary.get(f"{key}_ci")
    return number + (f" [{ci[0]:+.4f}, {ci[1]:+.4f}]" if signed and ci else _interval(ci))


def baselines_in(summary: Mapping[str, Any]) -> list[str]:
    return [b for b in BASELINES if f"baseline/{b}/pooled/accuracy" in summary]


def comparison(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"columns", "rows", "diff_rows", "verdicts", "caption"}`` (cells as text), or
    None when the summary has no pooled metrics with intervals."""
    if "pooled/accuracy_ci" not in summary:
        return None
    metrics = [m for m in METRICS if f"pooled/{m}" in summary]
    names = baselines_in(summary)
    rows = [["model", *(_cell(summary, f"pooled/{m}") for m in metrics)]]
    rows += [
        [TITLES[b], *(_cell(summary, f"baseline/{b}/pooled/{m}") for m in metrics)] for b in names
    ]
    if "chance/accuracy" in summary:
        rows.append(["chance (uniform guess)", *(_cell(summary, f"chance/{m}") for m in metrics)])
    diff_rows = [
        [f"model - {TITLES[b]}", *(_cell(summary, f"diff/{b}/{m}", signed=True) for m in metrics)]
        for b in names
    ]
    verdicts, judged = [], verdict_metric(summary)
    for b in names:
        key = f"diff/{b}/{judged}"
        if key not in summary:  # a recording baseline: judged on the recording metric
            key = f"diff/{b}/recording_{judged}"
        if key not in summary:
            continue
        lo, hi = summary.get(f"{key}_ci") or (0.0, 0.0)
        verdict = (
            "interval above 0: better"
            if lo > 0
            else "interval below 0: worse"
            if hi < 0
            else "interval includes 0: not shown to be better"
        )
        verdicts.append(
            f"model - {TITLES[b]} ({key.rsplit('/', 1)[-1]}): {_cell(summary, key, signed=True)} ({verdict})"
        )
    n, boot = summary.get("bootstrap/subjects"), summary.get("bootstrap/resamples")
    caption = (
        f"pooled test windows of all folds; [95% interval] by bootstrap over the {n} subjects "
        f"({boot} resamples; differences paired: the same resampled subjects); "
        "chance: expected metrics of a uniform random guess"
    )
    return {
        "columns": ["", *metrics],
        "rows": rows,
        "diff_rows": diff_rows,
        "verdicts": verdicts,
        "caption": caption,
        "notes": list(summary.get("baseline_notes") or []),
    }


def comparison_markdown(summary: Mapping[str, Any]) -> str:
    """The comparison as Markdown (empty when there is none)."""
    c = comparison(summary)
    if c is None:
        return ""

    def table(rows: list[list[str]]) -> list[str]:
        return [
            "| " + " | ".join(c["columns"]) + " |",
            "|" + "---|" * len(c["columns"]),
            *("| " + " | ".join(r) + " |" for r in rows),
        ]

    lines = ["## Model, baselines and chance", "", c["caption"], "", *table(c["rows"]), ""]
    if c["diff_rows"]:
        lines += ["### Paired differences", "", *table(c["diff_rows"]), "", *c["verdicts"], ""]
    lines += [f"Note: {note}" for note in c["notes"]]
    return "\n".join(lines).rstrip() + "\n"
