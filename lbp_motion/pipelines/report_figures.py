"""The figures of a report (:mod:`lbp_motion.pipelines.report`): PNG files written
beside it (:class:`Figures`) and the parts of a section that show one: confusion
matrices, ROC curves, validation per epoch, federated rounds."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import yaml

from lbp_motion.pipelines.report_parts import Figure, Section, Table, _float, _read_csv, num, text


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


def _epoch(row: dict[str, str]) -> int | None:
    value = _float(row.get("epoch"))
    return int(value) if value is not None else None


def _resumed_run(run: Path) -> Path | None:
    """The run directory whose checkpoint ``run``'s fit resumed from (``ckpt_path`` of its
    ``config.yaml`` is ``<run dir>/checkpoints/<file>``), or None."""
    config = run / "config.yaml"
    if not config.is_file():
        return None
    try:
        ckpt = (yaml.safe_load(config.read_text()) or {}).get("ckpt_path")
    except yaml.YAMLError:
        return None
    if not isinstance(ckpt, str) or Path(ckpt).parent.name != "checkpoints":
        return None
    earlier = Path(ckpt).parent.parent
    return earlier if (earlier / "metrics.csv").is_file() else None


def epoch_rows(run: Path) -> tuple[list[dict[str, str]], list[Path]]:
    """The CSV logger's rows of ``run``'s fit (its ``metrics.csv``), led by the epochs
    it resumed from: a fit resumed with ``lbp fit --ckpt_path`` (``lbp sweep`` resumes an
    interrupted run so) writes its epochs after the checkpoint into a new run
    directory; the rows of the epochs before are in the one it resumed from (and so on
    back). Returns the rows and those earlier run directories, oldest first."""
    rows = _read_csv(run / "metrics.csv")
    earlier_runs: list[Path] = []
    seen, current = {run.resolve()}, run
    while (earlier := _resumed_run(current)) is not None and earlier.resolve() not in seen:
        seen.add(earlier.resolve())
        first = min((e for e in map(_epoch, rows) if e is not None), default=None)
        before = [
            r
            for r in _read_csv(earlier / "metrics.csv")
            if (e := _epoch(r)) is not None and (first is None or e < first)
        ]
        rows, current = before + rows, earlier
        earlier_runs.insert(0, earlier)
    return rows, earlier_runs


def epoch_curves(sec: Section, run: Path, figures: Figures, prefix: str) -> None:
    """Validation metrics per epoch from the CSV logger's ``metrics.csv`` of ``run``
    (with the epochs before a resume, :func:`epoch_rows`)."""
    rows, earlier_runs = epoch_rows(run)
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
        caption = "from metrics.csv (CSV logger)"
        if earlier_runs:
            caption += "; the epochs before the resume from " + ", ".join(
                str(p) for p in earlier_runs
            )
        sec.figures.append(Figure("Validation per epoch", file, caption))


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
