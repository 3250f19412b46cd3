"""The sections of a report (:mod:`lbp_motion.pipelines.report`), one per run
directory, by what it holds: a fit, predict or federated run (``metrics.json``), a
cross-validation (``summary.json`` of ``lbp cv``) or a sweep (``state.json`` of ``lbp
sweep``); and the table comparing several runs."""

from __future__ import annotations

import json
from pathlib import Path

from lbp_motion.pipelines.report_figures import (
    Figures,
    confusion_section,
    epoch_curves,
    read_confusion,
    roc_section,
    rounds_section,
)
from lbp_motion.pipelines.report_parts import (
    MAIN_METRICS,
    Figure,
    Section,
    Table,
    _float,
    _metric_order,
    _read_csv,
    fmt,
    metrics_tables,
    num,
    text,
)


def _fit_section(run: Path, name: str, figures: Figures) -> Section:
    metrics = (
        json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    )
    federated = (run / "rounds.csv").is_file()
    kind = (
        "federated fit"
        if federated
        else (
            "fit"
            if "best_epoch" in metrics or "epochs_trained" in metrics
            else "predict"
            if (run / "predictions.csv").is_file()
            else "evaluation"
        )
    )
    sec = Section(name, str(run), kind)
    for key, label in (
        ("monitor", "monitored metric"),
        ("best_epoch", "best epoch"),
        ("epochs_trained", "epochs trained"),
        ("best_checkpoint", "best checkpoint"),
    ):
        if key in metrics:
            sec.facts.append((label, fmt(metrics[key])))
    confusions = sorted(run.glob("confusion_*.csv"))
    classes = read_confusion(confusions[0])[0] if confusions else None  # the task's class order
    sec.tables.extend(metrics_tables(metrics, classes=classes))
    for path in confusions:
        confusion_section(sec, path, figures, name)
    if (run / "predictions.csv").is_file():
        roc_section(
            sec, _read_csv(run / "predictions.csv"), figures, name, "ROC curves (predictions.csv)"
        )
    if federated:
        rounds_section(sec, run / "rounds.csv", figures, name)
    elif (run / "metrics.csv").is_file():
        epoch_curves(sec, run, figures, name)
    if (run / "config.yaml").is_file():
        sec.config = (run / "config.yaml").read_text()
    if not metrics and kind != "predict":
        sec.notes.append("no metrics.json in this run directory")
    return sec


def _cv_metrics_table(summary: dict) -> Table:
    """Mean, std and pooled value over folds of every test metric of ``summary.json``."""
    means = sorted(k[: -len("_mean")] for k in summary if k.endswith("_mean"))
    rows = []
    for key in _metric_order([k.split("/", 1)[1] for k in means]):
        full = f"test/{key}"
        rows.append(
            [
                text(key),
                num(summary.get(f"{full}_mean")),
                num(summary.get(f"{full}_std")),
                num(summary.get(f"pooled/{key}")) if f"pooled/{key}" in summary else text(""),
            ]
        )
    return Table(
        "Cross-validation: test metrics over folds",
        ["metric", "mean", "std", "pooled"],
        rows,
        "mean and sample std (ddof 1) over folds; pooled: all folds' test windows together",
    )


def _baseline_tables(sec: Section, summary: dict) -> None:
    """The model beside its baselines and chance, with subject-bootstrap intervals, and
    the paired differences model - baseline (when the summary has them)."""
    from lbp_motion.evaluation.tables import comparison

    versus = comparison(summary)
    if versus is None:
        return
    sec.tables.append(
        Table(
            "Model, baselines and chance (pooled)",
            versus["columns"],
            [[text(c) for c in r] for r in versus["rows"]],
            versus["caption"],
        )
    )
    if versus["diff_rows"]:
        sec.tables.append(
            Table(
                "Paired differences model - baseline",
                versus["columns"],
                [[text(c) for c in r] for r in versus["diff_rows"]],
                "; ".join(versus["verdicts"]),
            )
        )
    sec.notes.extend(versus["notes"])


def _fold_dirs(run: Path) -> list[Path]:
    """The ``fold_<i>`` folders of a cross-validation, by fold number."""
    return sorted(
        (p for p in run.glob("fold_*") if p.name.split("_")[1].isdigit()),
        key=lambda p: int(p.name.split("_")[1]),
    )


def _per_fold_table(run: Path, folds: list[Path]) -> Table:
    """Each fold's test subjects (``folds.csv``) and main test metrics (its ``metrics.json``)."""
    subjects: dict[str, list[str]] = {}
    if (run / "folds.csv").is_file():
        for r in _read_csv(run / "folds.csv"):
            subjects.setdefault(r["fold"], []).append(r["subject"])
    fold_metrics = {
        f.name: json.loads((f / "metrics.json").read_text())
        for f in folds
        if (f / "metrics.json").is_file()
    }
    shown = _metric_order(
        {
            k.split("/", 1)[1]
            for m in fold_metrics.values()
            for k in m
            if k.startswith("test/") and k.count("/") == 1
        }
    )
    shown = [k for k in shown if k in MAIN_METRICS][:7]
    frows = [
        [
            text(f),
            text(" ".join(subjects.get(f.split("_")[1], []))),
            *(num(m.get(f"test/{k}")) for k in shown),
        ]
        for f, m in fold_metrics.items()
    ]
    return Table("Per fold (test)", ["fold", "test subjects", *shown], frows)


def _pooled_results(sec: Section, folds: list[Path], figures: Figures, name: str) -> None:
    """The confusion matrix (table and figure) and ROC curves of the test windows of all
    folds together (their ``predictions.csv``), when they are labelled."""
    rows_all = []
    for f in folds:
        if (f / "predictions.csv").is_file():
            rows_all.extend(_read_csv(f / "predictions.csv"))
    if not rows_all or "label" not in rows_all[0]:
        return
    import numpy as np

    from lbp_motion.evaluation.figures import confusion_matrix_figure

    classes = [c[2:] for c in rows_all[0] if c.startswith("p_")]
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for r in rows_all:
        pred = max(classes, key=lambda c: float(r[f"p_{c}"]))
        matrix[classes.index(r["label"]), classes.index(pred)] += 1
    sec.tables.append(
        Table(
            "Pooled confusion matrix (test windows of all folds)",
            ["true \\ predicted", *classes],
            [[text(c), *(num(int(v)) for v in row)] for c, row in zip(classes, matrix)],
        )
    )
    file = figures.save(
        confusion_matrix_figure(matrix, classes, "pooled test confusion matrix"),
        name,
        "confusion_pooled",
    )
    sec.figures.append(Figure("Pooled confusion matrix", file, "test windows of all folds"))
    roc_section(sec, rows_all, figures, name, "ROC curves (pooled test windows)")


def _cv_section(run: Path, name: str, figures: Figures) -> Section:
    summary = json.loads((run / "summary.json").read_text())
    sec = Section(name, str(run), "cross-validation")
    spec = str(summary.get("folds_spec", ""))
    sec.facts.append(
        (
            "folds",
            fmt(summary.get("folds"))
            + (f" ({spec})" if spec and spec != str(summary.get("folds")) else ""),
        )
    )
    sec.tables.append(_cv_metrics_table(summary))
    _baseline_tables(sec, summary)
    folds = _fold_dirs(run)
    sec.tables.append(_per_fold_table(run, folds))
    _pooled_results(sec, folds, figures, name)
    if (run / "summary.md").is_file():
        sec.notes.append("summary.md holds the same summary as a Markdown table")
    return sec


def _sweep_section(run: Path, name: str, figures: Figures) -> Section:
    state = json.loads((run / "state.json").read_text())
    sec = Section(name, str(run), "sweep")
    metric, goal = state.get("metric"), state.get("goal")
    sec.facts += [
        ("method", str(state.get("method"))),
        ("seed", fmt(state.get("seed"))),
        ("metric", f"{metric} ({goal})" if metric else "none"),
    ]
    if (run / "results.csv").is_file():
        rows = _read_csv(run / "results.csv")
        params = [
            c
            for c in (rows[0] if rows else {})
            if c not in ("rank", "run", "status", "run_dir")
            and "/" not in c
            or c.startswith(("model.", "data.", "trainer."))
        ]
        shown = [
            c
            for c in ([metric] if metric else [])
            + [f"test/{m}" for m in ("accuracy", "f1_macro", "mcc")]
            if rows and c in rows[0]
        ]
        shown = list(dict.fromkeys(shown))
        table_rows = []
        for r in rows:
            table_rows.append(
                [
                    num(int(r["rank"])),
                    text(r["run"]),
                    text(r["status"]),
                    *(text(r[p]) for p in params),
                    *(num(_float(r[c])) for c in shown),
                ]
            )
        sec.tables.append(
            Table("Sweep runs, best first", ["rank", "run", "status", *params, *shown], table_rows)
        )
        finished = [
            r
            for r in rows
            if r["status"] in ("finished", "stopped") and _float(r.get(metric or "")) is not None
        ]  # a run stopped by early termination has real (if shorter) results
        if metric and finished:
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(6, 0.4 * len(finished) + 1.2))
            ax.barh([r["run"] for r in finished][::-1], [_float(r[metric]) for r in finished][::-1])
            ax.set_xlabel(metric)
            ax.set_title(f"sweep {state.get('sweep', name)}: {metric}")
            fig.tight_layout()
            sec.figures.append(
                Figure(
                    f"Sweep: {metric} per run", figures.save(fig, name, "sweep"), "best at the top"
                )
            )
    if (run / "sweep.yaml").is_file():
        sec.config = (run / "sweep.yaml").read_text()
    return sec


def build_sections(run_dirs: list[Path], figures: Figures) -> list[Section]:
    sections = []
    names: set[str] = set()
    for run in run_dirs:
        parts = run.resolve().parts
        name = "/".join(parts[-2:]) if run.name.startswith("version_") else run.name
        while name in names:
            name += "'"
        names.add(name)
        if (run / "summary.json").is_file():
            sections.append(_cv_section(run, name, figures))
        elif (run / "state.json").is_file():
            sections.append(_sweep_section(run, name, figures))
        else:
            sections.append(_fit_section(run, name, figures))
    return sections


def comparison_table(sections: list[Section], run_dirs: list[Path]) -> Table | None:
    """Main test (else val) metrics of several runs side by side."""
    rows, cols = [], []
    entries = []
    for sec, run in zip(sections, run_dirs):
        if (run / "metrics.json").is_file():
            entries.append((sec, json.loads((run / "metrics.json").read_text())))
        elif (run / "summary.json").is_file():
            s = json.loads((run / "summary.json").read_text())
            entries.append(
                (sec, {k[: -len("_mean")]: v for k, v in s.items() if k.endswith("_mean")})
            )
    wanted = [f"test/{m}" for m in ("accuracy", "f1_macro", "mcc", "recording_accuracy")] + [
        "val/f1_macro",
        "val/accuracy",
    ]
    cols = [c for c in wanted if any(c in m for _, m in entries)]
    if len(entries) < 2 or not cols:
        return None
    for sec, m in entries:
        rows.append(
            [text(sec.name), text(sec.kind), *(num(m.get(c)) if c in m else text("") for c in cols)]
        )
    cv = any(sec.kind == "cross-validation" for sec, _ in entries)
    return Table(
        "Runs compared",
        ["run", "kind", *cols],
        rows,
        "val: the best checkpoint's validation"
        + ("; cross-validation rows: means over folds" if cv else ""),
    )
