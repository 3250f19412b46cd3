"""Analyses of datasets and results: ``lbp analyze SUBCOMMAND``.

``lbp analyze exercise-correlation ROOT``: PLAAN's Table 1. For every exercise type e
and every class c of the pain and protective labels, the Spearman correlation (with
its two-sided p-value) between the frame indicators [exercise == e] and [label == c],
over the frames of every EmoPain file under ROOT (``train/``, ``validation/`` or
ROOT itself). Pain correlations use only frames with a reported pain level (not -1).
Writes ``exercise_correlation.csv`` (exercise, label, class, rho, p, frames) and
``exercise_correlation.png`` (a heat map of rho, p < 0.05 starred) into ``--out_dir``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from lbp_motion.errors import LbpError


def _emopain_files(root: Path) -> list[Path]:
    from lbp_motion.datasets.emopain import list_emopain_files

    if not root.is_dir():
        raise LbpError(f"{root}: folder not found")
    folders = [root / "train", root / "validation", root / "test"]
    files = [f for d in folders if d.is_dir() for f in list_emopain_files(d)] or list_emopain_files(
        root
    )
    if not files:
        raise LbpError(
            f"{root}: no EmoPain .mat or .csv files (looked in train/, validation/, test/ and the folder)"
        )
    return files


def exercise_label_correlation(
    exercise: np.ndarray, pain: np.ndarray, protective: np.ndarray
) -> list[dict]:
    """Rows of (exercise, label, class, rho, p, frames) over frame label arrays (T,).
    A constant indicator has no correlation: rho and p are NaN then."""
    from scipy.stats import spearmanr

    from lbp_motion.datasets.emopain import EXERCISES, PAIN_CLASSES, PROTECTIVE_CLASSES

    rows = []
    for label, values, classes, keep in (
        ("pain", pain, PAIN_CLASSES, pain >= 0),
        ("protective", protective, PROTECTIVE_CLASSES, np.ones_like(protective, bool)),
    ):
        for e, exercise_name in enumerate(EXERCISES):
            a = (exercise[keep] == e).astype(float)
            for c, class_name in enumerate(classes):
                b = (values[keep] == c).astype(float)
                if a.std() == 0 or b.std() == 0:
                    rho, p = float("nan"), float("nan")
                else:
                    rho, p = (float(v) for v in spearmanr(a, b))
                rows.append(
                    {
                        "exercise": exercise_name,
                        "label": label,
                        "class": class_name,
                        "rho": rho,
                        "p": p,
                        "frames": int(keep.sum()),
                    }
                )
    return rows


def correlation_figure(rows: list[dict]):
    """Heat map of rho: exercises down, label classes across; p < 0.05 starred."""
    from lbp_motion.evaluation.figures import plt

    exercises = list(dict.fromkeys(r["exercise"] for r in rows))
    columns = list(dict.fromkeys(f"{r['label']}: {r['class']}" for r in rows))
    rho = np.full((len(exercises), len(columns)), np.nan)
    star = np.zeros_like(rho, bool)
    for r in rows:
        i, j = exercises.index(r["exercise"]), columns.index(f"{r['label']}: {r['class']}")
        rho[i, j], star[i, j] = r["rho"], r["p"] < 0.05
    fig, ax = plt.subplots(figsize=(1.3 * len(columns) + 2, 0.5 * len(exercises) + 1.5))
    im = ax.imshow(rho, cmap="coolwarm", vmin=-1, vmax=1)
    ax.set_xticks(range(len(columns)), columns, rotation=40, ha="right")
    ax.set_yticks(range(len(exercises)), exercises)
    for i in range(len(exercises)):
        for j in range(len(columns)):
            if np.isfinite(rho[i, j]):
                ax.text(
                    j,
                    i,
                    f"{rho[i, j]:.2f}{'*' if star[i, j] else ''}",
                    ha="center",
                    va="center",
                    fontsize=8,
                )
    fig.colorbar(im, ax=ax, label="Spearman rho")
    ax.set_title("Exercise type vs. label (Spearman; * p < 0.05)")
    fig.tight_layout()
    return fig


def run_exercise_correlation(root: str | Path, out: str | Path) -> Path:
    from lbp_motion.datasets.emopain import read_emopain

    files = _emopain_files(Path(root))
    recs = [read_emopain(f) for f in files]
    exercise = np.concatenate([r.exercise for r in recs])
    pain = np.concatenate([r.pain for r in recs])
    protective = np.concatenate([r.protective for r in recs])
    rows = exercise_label_correlation(exercise, pain, protective)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "exercise_correlation.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["exercise", "label", "class", "rho", "p", "frames"])
        writer.writeheader()
        writer.writerows(rows)
    fig = correlation_figure(rows)
    fig.savefig(out / "exercise_correlation.png", dpi=100)
    from lbp_motion.evaluation.figures import plt

    plt.close(fig)
    print(
        f"{len(files)} files, {len(exercise)} frames -> {out / 'exercise_correlation.csv'}, {out / 'exercise_correlation.png'}"
    )
    return out
