"""Metrics and figures of tasks whose prediction is a decision made at the end of an
epoch (a threshold on anomaly scores, a hierarchy of stages) rather than the argmax of
one head's logits: the same metric names as :mod:`.metrics`, from hard predictions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor

from lbp_motion.atomic import write_text
from lbp_motion.evaluation.figures import confusion_matrix_figure, plt
from lbp_motion.evaluation.metrics import classification_metrics, flatten_metrics, recording_metrics


def decision_metrics(
    preds: Tensor,
    target: Tensor,
    classes: Sequence[str],
    prefix: str,
    recording: Tensor | None = None,
) -> dict[str, Tensor]:
    """Window metrics (accuracy, weighted/macro/per-class F1, MCC, ...; the names of
    :mod:`.metrics`) of hard predictions ``preds`` (N,) against ``target`` (N,), and,
    with ``recording`` (N,), recording-level metrics from the per-recording vote."""
    n = len(classes)
    collection = classification_metrics(n)
    collection.update(preds.long().cpu(), target.long().cpu())
    out = flatten_metrics(collection.compute(), classes, prefix)
    if recording is not None:
        votes = torch.nn.functional.one_hot(preds.long().cpu(), n).float()
        out.update(recording_metrics(recording.cpu(), votes, target.long().cpu(), prefix))
    return {k: v.float() for k, v in out.items()}


def run_dir_of(task) -> Path | None:
    """The run directory (the Trainer's log_dir), or None outside a logged run."""
    log_dir = task.trainer.log_dir if task._trainer is not None else None
    return Path(log_dir) if log_dir is not None else None


def save_figure(task, fig, filename: str, key: str) -> Path | None:
    """``fig`` as ``<run dir>/<filename>`` (PNG) and as a W&B image under ``key``; closes it."""
    out = run_dir_of(task)
    path = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        path = out / filename
        fig.savefig(path, dpi=100, bbox_inches="tight")
        for logger in task.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=key, images=[fig])
    plt.close(fig)
    return path


def confusion_matrix(preds: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """``(C, C)`` counts, rows true class, columns predicted class."""
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)
    matrix.index_put_(
        (target.long().cpu(), preds.long().cpu()),
        torch.ones(len(preds), dtype=torch.long),
        accumulate=True,
    )
    return matrix


def save_confusion_matrix(task, matrix: Tensor, classes: Sequence[str], stage: str) -> None:
    """The one confusion-matrix writer of every task: ``confusion_<stage>.csv`` (rows
    true, columns predicted) and ``confusion_<stage>.png`` in the run directory, and the
    PNG as a W&B image under ``<stage>/confusion_matrix``; nothing outside a logged run."""
    out = run_dir_of(task)
    if out is None:
        return
    lines = ["true\\predicted," + ",".join(classes)]
    lines += [
        cls + "," + ",".join(str(int(v)) for v in row) for cls, row in zip(classes, matrix.tolist())
    ]
    write_text(out / f"confusion_{stage}.csv", "\n".join(lines) + "\n")
    fig = confusion_matrix_figure(
        matrix.cpu().numpy(), list(classes), title=f"{stage} confusion matrix"
    )
    save_figure(task, fig, f"confusion_{stage}.png", f"{stage}/confusion_matrix")


def save_confusion(task, preds: Tensor, target: Tensor, classes: Sequence[str], stage: str) -> None:
    """:func:`save_confusion_matrix` of hard predictions ``preds`` against ``target``."""
    save_confusion_matrix(task, confusion_matrix(preds, target, len(classes)), classes, stage)


def save_scores(
    task, stage: str, recording: Tensor, scores: Tensor, target: Tensor, preds: Tensor
) -> None:
    """``scores_<stage>.csv`` in the run directory: one row per sample with its
    recording, decision score, true binary label and thresholded decision."""
    out = run_dir_of(task)
    if out is None:
        return
    rows = ["recording,score,anomalous,predicted"]
    rows += [
        f"{r},{s:.6g},{y},{p}"
        for r, s, y, p in zip(recording.tolist(), scores.tolist(), target.tolist(), preds.tolist())
    ]
    write_text(out / f"scores_{stage}.csv", "\r\n".join(rows) + "\r\n")
