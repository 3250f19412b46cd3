"""Run reports: ``lbp report RUN_DIR... --out DIR`` writes ``DIR/report.html`` (self-
contained: inline style, no script, no network asset) and ``DIR/report.md``, with the
figures as PNG files beside them.

A report covers one run directory or a group of them (then it starts with a table
comparing their main metrics). What each section shows depends on the files found:

* ``config.yaml``: the configuration;
* ``metrics.json`` (docs/metrics.md): final metrics per stage (``val``, ``final_val``,
  ``test``), a per-class table per stage, best epoch and checkpoint;
* ``confusion_<stage>.csv``: the confusion matrix (table and figure);
* ``metrics.csv`` (CSV logger): per-epoch validation curves;
* ``predictions.csv`` with ``label`` and ``p_<class>`` columns (``lbp predict`` on
  labelled data, cross-validation folds): one-vs-rest ROC curves per class; with
  ``score`` and 0/1 ``label`` columns: the ROC curve of the scores;
* ``rounds.csv`` (federated runs): per-round validation and client-loss curves;
* ``summary.json`` + ``fold_<i>/`` (``lbp cv``): mean, std and pooled metrics (with the
  baselines and subject-bootstrap intervals side by side when the summary has them), a
  per-fold table, the pooled confusion matrix and ROC curves;
* ``state.json`` + ``results.csv`` (``lbp sweep``): the table of runs, best first.

A folder holding only ``version_<n>`` folders stands for its latest version.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lbp_motion.errors import LbpError

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


# -- reading run directories ---------------------------------------------------------------
def resolve_run_dirs(paths: list[str | Path]) -> list[Path]:
    """The run directories behind the given paths (a parent of ``version_<n>`` folders
    stands for its latest version); raises :class:`LbpError` for a path that is none."""
    out = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise LbpError(f"{p}: no such run directory")
        if any(
            (p / f).is_file()
            for f in (
                "metrics.json",
                "summary.json",
                "state.json",
                "config.yaml",
                "predictions.csv",
            )
        ):
            out.append(p)
            continue
        versions = [v for v in p.glob("version_*") if v.name.split("_")[-1].isdigit()]
        if not versions:
            raise LbpError(
                f"{p}: not a run directory (no metrics.json, summary.json of lbp cv, state.json of lbp sweep, "
                "config.yaml or predictions.csv)"
            )
        out.append(max(versions, key=lambda v: int(v.name.split("_")[-1])))
    return out


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


# -- figures -------------------------------------------------------------------------------
class Figures:
    """Writes figures as PNG files into the report folder with unique names."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.used: set[str] = set()

    def name(self, prefix: str, what: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{prefix}-{what}").strip("_")
        name, i = f"{base}.png", 1
        while name in self.used:
            i += 1
            name = f"{base}-{i}.png"
        self.used.add(name)
        return name

    def save(self, fig, prefix: str, what: str) -> str:
        import matplotlib.pyplot as plt

        name = self.name(prefix, what)
        fig.savefig(self.out / name, dpi=100, bbox_inches="tight")
        plt.close(fig)
        return name

    def copy(self, src: Path, prefix: str) -> str:
        name = self.name(prefix, src.stem)
        shutil.copyfile(src, self.out / name)
        return name


def read_confusion(path: Path) -> tuple[list[str], list[list[int]]]:
    """``confusion_<stage>.csv`` (first row ``true\\predicted,<classes>``)."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    classes = rows[0][1:]
    return classes, [[int(float(v)) for v in r[1:]] for r in rows[1:]]


def confusion_section(sec: Section, path: Path, figures: Figures, prefix: str) -> None:
    from lbp_motion.evaluation.figures import confusion_matrix_figure

    stage = path.stem.split("_", 1)[1]
    classes, matrix = read_confusion(path)
    rows = [[text(c), *(num(v) for v in row)] for c, row in zip(classes, matrix)]
    sec.tables.append(Table(f"Confusion matrix ({stage})", ["true \\ predicted", *classes], rows))
    png = path.with_suffix(".png")
    if png.is_file():
        file = figures.copy(png, prefix)
    else:
        import numpy as np

        file = figures.save(
            confusion_matrix_figure(np.array(matrix), classes, f"{stage} confusion matrix"),
            prefix,
            f"confusion_{stage}",
        )
    sec.figures.append(
        Figure(f"Confusion matrix ({stage})", file, "rows: true class; columns: predicted")
    )


def roc_curves(rows: list[dict[str, str]]) -> dict[str, tuple[list[float], list[int]]]:
    """ROC inputs from prediction rows: one-vs-rest per class from ``p_<class>`` and
    ``label``, or the ``score`` column against a 0/1 ``label``. Curves that lack
    positives or negatives are left out."""
    if not rows or "label" not in rows[0]:
        return {}
    curves = {}
    prob_cols = [c for c in rows[0] if c.startswith("p_")]
    if prob_cols:
        for col in prob_cols:
            cls = col[2:]
            labels = [int(r["label"] == cls) for r in rows]
            if 0 < sum(labels) < len(labels):
                curves[f"{cls} vs rest"] = ([float(r[col]) for r in rows], labels)
    elif "score" in rows[0]:
        labels = [int(float(r["label"])) for r in rows]
        if set(labels) == {0, 1}:
            curves["score"] = ([float(r["score"]) for r in rows], labels)
    return curves


def roc_section(
    sec: Section, rows: list[dict[str, str]], figures: Figures, prefix: str, title: str
) -> None:
    from sklearn.metrics import roc_auc_score

    from lbp_motion.evaluation.figures import roc_figure

    curves = roc_curves(rows)
    if not curves:
        return
    file = figures.save(roc_figure(curves, title=title), prefix, "roc")
    sec.figures.append(
        Figure(
            title, file, f"{len(rows)} windows; one-vs-rest per class" if len(curves) > 1 else ""
        )
    )
    sec.tables.append(
        Table(
            f"{title}: area under the curve",
            ["curve", "AUC"],
            [[text(n), num(float(roc_auc_score(lab, s)))] for n, (s, lab) in curves.items()],
        )
    )


def _line_figure(series: dict[str, tuple[list[float], list[float]]], xlabel: str, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401 (matplotlib.ticker below)

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, (x, y) in series.items():
        ax.plot(x, y, marker="o", markersize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def epoch_curves(sec: Section, path: Path, figures: Figures, prefix: str) -> None:
    """Validation metrics per epoch from the CSV logger's ``metrics.csv``."""
    rows = _read_csv(path)
    keys = [
        k for k in ("val/f1_macro", "val/accuracy", "val/mcc", "val/loss") if rows and k in rows[0]
    ]
    series = {}
    for key in keys:
        points = [
            (int(float(r["epoch"])), _float(r[key]))
            for r in rows
            if r.get("epoch") and _float(r.get(key)) is not None
        ]
        if points:
            series[key] = ([p[0] for p in points], [p[1] for p in points])
    if series and max(len(x) for x, _ in series.values()) > 1:
        file = figures.save(_line_figure(series, "epoch", "validation per epoch"), prefix, "epochs")
        sec.figures.append(Figure("Validation per epoch", file, "from metrics.csv (CSV logger)"))


def rounds_section(sec: Section, path: Path, figures: Figures, prefix: str) -> None:
    """Federated runs: the global model's validation and each client's training loss per round."""
    rows = _read_csv(path)
    if not rows:
        return
    rounds = [int(float(r["round"])) for r in rows]
    val_keys = [k for k in ("val/f1_macro", "val/accuracy", "val/mcc", "val/loss") if k in rows[0]]
    series = {
        k: (rounds, [_float(r[k]) for r in rows])
        for k in val_keys
        if all(_float(r[k]) is not None for r in rows)
    }
    if series:
        file = figures.save(
            _line_figure(series, "round", "global model, validation per round"),
            prefix,
            "rounds_val",
        )
        sec.figures.append(Figure("Federated: validation per round", file, "from rounds.csv"))
    loss_keys = sorted(k for k in rows[0] if k.startswith("client_") and k.endswith("/train_loss"))
    clients = {}
    for k in loss_keys:
        pts = [(x, _float(r[k])) for x, r in zip(rounds, rows) if _float(r.get(k)) is not None]
        if pts:
            clients[k.split("/")[0]] = ([p[0] for p in pts], [p[1] for p in pts])
    if clients:
        file = figures.save(
            _line_figure(clients, "round", "client training loss per round"),
            prefix,
            "rounds_clients",
        )
        sec.figures.append(
            Figure("Federated: client training loss per round", file, "from rounds.csv")
        )
    shown = ["round", "clients", *val_keys[:4]]
    shown = [k for k in shown if k in rows[0]]
    sec.tables.append(
        Table(
            "Federated rounds",
            shown,
            [
                [
                    num(int(float(r[k])) if k in ("round", "clients") else _float(r[k]))
                    for k in shown
                ]
                for r in rows
            ],
        )
    )


# -- sections per kind of run directory ----------------------------------------------------
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
        epoch_curves(sec, run / "metrics.csv", figures, name)
    if (run / "config.yaml").is_file():
        sec.config = (run / "config.yaml").read_text()
    if not metrics and kind != "predict":
        sec.notes.append("no metrics.json in this run directory")
    return sec


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
    sec.tables.append(
        Table(
            "Cross-validation: test metrics over folds",
            ["metric", "mean", "std", "pooled"],
            rows,
            "mean and sample std (ddof 1) over folds; pooled: all folds' test windows together",
        )
    )
    from lbp_motion.evaluation.tables import comparison

    versus = comparison(summary)
    if (
        versus is not None
    ):  # the model beside its baselines and chance, with subject-bootstrap intervals
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
    folds = sorted(
        (p for p in run.glob("fold_*") if p.name.split("_")[1].isdigit()),
        key=lambda p: int(p.name.split("_")[1]),
    )
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
    sec.tables.append(Table("Per fold (test)", ["fold", "test subjects", *shown], frows))
    rows_all = []
    for f in folds:
        if (f / "predictions.csv").is_file():
            rows_all.extend(_read_csv(f / "predictions.csv"))
    if rows_all and "label" in rows_all[0]:
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
            r for r in rows if r["status"] == "finished" and _float(r.get(metric or "")) is not None
        ]
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


# -- rendering -----------------------------------------------------------------------------
HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { margin-top: 2.5rem; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: .5rem 0 1.2rem; font-size: .92rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
.note { color: #57606a; font-size: .85rem; }
figure { display: inline-block; margin: .5rem 1rem 1rem 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { font-size: .85rem; color: #57606a; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; font-size: .82rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; } dd { margin: 0; word-break: break-all; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="note">Generated {{ generated }} by <code>lbp report</code> (lbp_motion {{ version }}) from
{{ sections|length }} run director{{ "y" if sections|length == 1 else "ies" }}.</p>
{% macro render_table(t) %}
<table>
<caption>{{ t.title }}</caption>
<thead><tr>{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr>{% for cell in row %}{% if cell.value is not none %}<td class="num" data-value="{{ cell.value|tojson }}">{{ cell.text }}</td>{% else %}<td>{{ cell.text }}</td>{% endif %}{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{% if t.note %}<p class="note">{{ t.note }}</p>{% endif %}
{% endmacro %}
{% if comparison %}{{ render_table(comparison) }}{% endif %}
{% for s in sections %}
<section id="run-{{ loop.index }}">
<h2>{{ s.name }} <small class="note">({{ s.kind }})</small></h2>
<p class="note">{{ s.path }}</p>
{% if s.facts %}<dl>{% for k, v in s.facts %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>{% endif %}
{% for n in s.notes %}<p class="note">{{ n }}</p>{% endfor %}
{% for t in s.tables %}{{ render_table(t) }}{% endfor %}
{% for f in s.figures %}<figure><img src="{{ f.file }}" alt="{{ f.title }}"><figcaption>{{ f.title }}{% if f.caption %}: {{ f.caption }}{% endif %}</figcaption></figure>
{% endfor %}
{% if s.config %}<details><summary>Configuration</summary><pre>{{ s.config }}</pre></details>{% endif %}
</section>
{% endfor %}
</body>
</html>
"""


def render_html(title: str, sections: list[Section], comparison: Table | None) -> str:
    import jinja2

    from lbp_motion import __version__

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(HTML_TEMPLATE).render(
        title=title,
        sections=sections,
        comparison=comparison,
        version=__version__,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def _md_table(t: Table) -> list[str]:
    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    lines = [
        f"**{esc(t.title)}**",
        "",
        "| " + " | ".join(esc(c) for c in t.columns) + " |",
        "|" + "---|" * len(t.columns),
    ]
    lines += ["| " + " | ".join(esc(c.text) for c in row) + " |" for row in t.rows]
    if t.note:
        lines += ["", f"*{t.note}*"]
    return lines + [""]


def render_markdown(title: str, sections: list[Section], comparison: Table | None) -> str:
    lines = [f"# {title}", ""]
    if comparison:
        lines += _md_table(comparison)
    for s in sections:
        lines += [f"## {s.name} ({s.kind})", "", f"`{s.path}`", ""]
        lines += [f"- {k}: {v}" for k, v in s.facts] + ([""] if s.facts else [])
        lines += [f"*{n}*" for n in s.notes] + ([""] if s.notes else [])
        for t in s.tables:
            lines += _md_table(t)
        for f in s.figures:
            lines += [f"![{f.title}]({f.file})", ""]
        if s.config:
            lines += [
                "<details><summary>Configuration</summary>",
                "",
                "```yaml",
                s.config.rstrip(),
                "```",
                "",
                "</details>",
                "",
            ]
    return "\n".join(lines)


def write_report(run_dirs: list[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Write ``out/report.html``, ``out/report.md`` and the figures; returns the HTML path."""
    runs = resolve_run_dirs(run_dirs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = Figures(out)
    sections = build_sections(runs, figures)
    comparison = comparison_table(sections, runs)
    title = title or (
        "Run report: "
        + ", ".join(s.name for s in sections[:3])
        + (" ..." if len(sections) > 3 else "")
    )
    (out / "report.md").write_text(render_markdown(title, sections, comparison))
    path = out / "report.html"
    path.write_text(render_html(title, sections, comparison))
    return path
