"""Figures logged by tasks (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_matrix_figure(
    matrix: np.ndarray, classes: Sequence[str], title: str = "confusion matrix"
):
    """A confusion matrix (rows true, columns predicted) as a figure with counts and
    row-normalised colours."""
    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2, 1.2 * len(classes) + 1.5))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                f"{int(matrix[i, j])}",
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.5 else "black",
            )
    fig.tight_layout()
    return fig


def roc_figure(curves: dict, title: str = "ROC"):
    """ROC curves of anomaly scores: ``curves`` maps a name to ``(scores, labels)``
    (labels 1 = anomalous = positive; higher score = more anomalous). One line per
    curve with its AUC in the legend, plus the chance diagonal (the last line)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (scores, labels) in curves.items():
        scores, labels = (
            np.asarray(scores, dtype=float).reshape(-1),
            np.asarray(labels).reshape(-1).astype(int),
        )
        if np.unique(labels).size < 2:
            raise ValueError(
                f"roc_figure: curve {name!r} needs both normal (0) and anomalous (1) labels"
            )
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC = {roc_auc_score(labels, scores):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def score_boxplot_figure(scores, labels, threshold: float, title: str = "anomaly scores"):
    """Box plots of the anomaly scores of normal (label 0) and anomalous (label 1)
    segments, with ``threshold`` drawn as a horizontal dashed line. A class without
    scores gets an empty box position."""
    scores, labels = (
        np.asarray(scores, dtype=float).reshape(-1),
        np.asarray(labels).reshape(-1).astype(int),
    )
    groups = [scores[labels == 0], scores[labels == 1]]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.boxplot(groups)
    ax.set_xticks([1, 2], [f"normal (n={len(groups[0])})", f"anomalous (n={len(groups[1])})"])
    ax.axhline(threshold, color="red", linestyle="--", label=f"threshold = {threshold:.4g}")
    ax.set_ylabel("anomaly score")
    ax.set_title(title)
    ax.legend(loc="best")
    fig.tight_layout()
    return fig
