"""Classification metrics (torchmetrics) and their flat names in metrics.json.

Window level, per stage ``<stage>/<name>``: ``accuracy``, ``precision_weighted``,
``recall_weighted``, ``f1_weighted``, ``f1_macro``, ``mcc``, ``f1/<class>``,
``precision/<class>``, ``recall/<class>``. Recording level (window probabilities
averaged per recording, then argmax): ``recording_accuracy``, ``recording_f1_macro``,
``recording_mcc``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassMatthewsCorrCoef,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_f1_score,
    multiclass_matthews_corrcoef,
)


def classification_metrics(num_classes: int) -> MetricCollection:
    """The window-level metric collection; per-class entries are (C,) tensors."""
    c = num_classes
    return MetricCollection(
        {
            "accuracy": MulticlassAccuracy(c, average="micro"),
            "precision_weighted": MulticlassPrecision(c, average="weighted"),
            "recall_weighted": MulticlassRecall(c, average="weighted"),
            "f1_weighted": MulticlassF1Score(c, average="weighted"),
            "f1_macro": MulticlassF1Score(c, average="macro"),
            "mcc": MulticlassMatthewsCorrCoef(c),
            "f1": MulticlassF1Score(c, average=None),
            "precision": MulticlassPrecision(c, average=None),
            "recall": MulticlassRecall(c, average=None),
        }
    )


def confusion_matrix_metric(num_classes: int) -> MulticlassConfusionMatrix:
    """Counts (C, C): rows are true classes, columns predicted classes."""
    return MulticlassConfusionMatrix(num_classes)


def flatten_metrics(values: dict[str, Tensor], classes: Sequence[str], prefix: str) -> dict[str, Tensor]:
    """``{"f1": tensor([a, b])}`` -> ``{"<prefix>/f1/<class0>": a, ...}``; scalars keep their name."""
    out: dict[str, Tensor] = {}
    for name, value in values.items():
        if value.ndim == 0:
            out[f"{prefix}/{name}"] = value
        else:
            for cls, v in zip(classes, value):
                out[f"{prefix}/{name}/{cls}"] = v
    return out


def aggregate_by_recording(recording: Tensor, probs: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Average window probabilities per recording.

    Args:
        recording: (N,) int recording id of each window.
        probs: (N, C) window class probabilities.
        target: (N,) int window labels (constant within a recording).
    Returns:
        ids (R,), mean probabilities (R, C), recording labels (R,) (most frequent window
        label of the recording).
    """
    ids, inverse = torch.unique(recording, return_inverse=True)
    sums = torch.zeros(len(ids), probs.shape[1], dtype=probs.dtype).index_add_(0, inverse, probs)
    counts = torch.bincount(inverse, minlength=len(ids)).to(probs.dtype).unsqueeze(1)
    votes = torch.zeros(len(ids), probs.shape[1]).index_add_(
        0, inverse, torch.nn.functional.one_hot(target, probs.shape[1]).float()
    )
    return ids, sums / counts, votes.argmax(dim=1)


def recording_metrics(recording: Tensor, probs: Tensor, target: Tensor, prefix: str) -> dict[str, Tensor]:
    """Recording-level accuracy, macro F1 and MCC (see :func:`aggregate_by_recording`)."""
    _, mean_probs, labels = aggregate_by_recording(recording, probs, target)
    preds = mean_probs.argmax(dim=1)
    c = probs.shape[1]
    return {
        f"{prefix}/recording_accuracy": multiclass_accuracy(preds, labels, c, average="micro"),
        f"{prefix}/recording_f1_macro": multiclass_f1_score(preds, labels, c, average="macro"),
        f"{prefix}/recording_mcc": multiclass_matthews_corrcoef(preds, labels, c),
    }
