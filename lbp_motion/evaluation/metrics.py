"""Classification metrics (torchmetrics) and their flat names in metrics.json.

Window level, per stage ``<stage>/<name>``: ``accuracy``, ``precision_weighted``,
``recall_weighted``, ``f1_weighted``, ``f1_macro``, ``mcc``, ``f1/<class>``,
``precision/<class>``, ``recall/<class>``. Recording level (window probabilities
combined per recording by a rule, :func:`aggregate_by_recording`, then argmax):
``recording_accuracy``, ``recording_f1_macro``, ``recording_mcc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

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

from lbp_motion.errors import ConfigError

#: How window outputs become one answer per recording (:func:`aggregate_by_recording`).
RecordingRule = Literal["mean_prob", "mean_log_prob", "majority"]
RECORDING_RULES: tuple[str, ...] = get_args(RecordingRule)


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


def flatten_metrics(
    values: dict[str, Tensor], classes: Sequence[str], prefix: str
) -> dict[str, Tensor]:
    """``{"f1": tensor([a, b])}`` -> ``{"<prefix>/f1/<class0>": a, ...}``; scalars keep their name."""
    out: dict[str, Tensor] = {}
    for name, value in values.items():
        if value.ndim == 0:
            out[f"{prefix}/{name}"] = value
        else:
            for cls, v in zip(classes, value):
                out[f"{prefix}/{name}/{cls}"] = v
    return out


def check_recording_rule(rule: str, owner: str = "recording_rule") -> str:
    """``rule`` if it is one of :data:`RECORDING_RULES`, else one :class:`ConfigError` line."""
    if rule not in RECORDING_RULES:
        raise ConfigError(f"{owner}={rule!r}; expected one of {', '.join(RECORDING_RULES)}")
    return rule


def aggregate_by_recording(
    recording: Tensor, probs: Tensor, target: Tensor, rule: RecordingRule = "mean_prob"
) -> tuple[Tensor, Tensor, Tensor]:
    """Combine window probabilities into one probability vector per recording.

    Rules (every one returns non-negative scores summing to 1 per recording, whose
    argmax is the recording's prediction):

    * ``mean_prob``: the mean of the window probabilities (the default);
    * ``mean_log_prob``: the mean of the window log-probabilities, renormalised
      (softmax of the mean log-probability: a normalised geometric mean). A window
      that is confidently against a class weighs more than under ``mean_prob``;
      probabilities are clamped at 1e-12 before the log;
    * ``majority``: each window votes for its argmax; the scores are
      ``(votes + mean_prob / 2) / (windows + 1/2)``: the vote shares, nudged by half a
      vote of mean probability, so the most voted class wins and a tie goes to the
      class with the larger mean probability.

    Args:
        recording: (N,) int recording id of each window.
        probs: (N, C) window class probabilities.
        target: (N,) int window labels (constant within a recording).
        rule: one of :data:`RECORDING_RULES`.
    Returns:
        ids (R,) sorted, scores (R, C), recording labels (R,) (most frequent window
        label of the recording).
    """
    check_recording_rule(rule)
    c = probs.shape[1]
    ids, inverse = torch.unique(recording, return_inverse=True)
    counts = torch.bincount(inverse, minlength=len(ids)).to(probs.dtype).unsqueeze(1)

    def sum_of(values: Tensor) -> Tensor:
        return torch.zeros(len(ids), c, dtype=values.dtype).index_add_(0, inverse, values)

    mean_prob = sum_of(probs) / counts
    if rule == "mean_prob":
        scores = mean_prob
    elif rule == "mean_log_prob":
        scores = (sum_of(probs.clamp_min(1e-12).log()) / counts).softmax(dim=1)
    else:
        votes = sum_of(torch.nn.functional.one_hot(probs.argmax(dim=1), c).to(probs.dtype))
        scores = (votes + mean_prob / 2) / (counts + 0.5)
    label_votes = sum_of(torch.nn.functional.one_hot(target, c).float())
    return ids, scores, label_votes.argmax(dim=1)


def recording_metrics(
    recording: Tensor, probs: Tensor, target: Tensor, prefix: str, rule: RecordingRule = "mean_prob"
) -> dict[str, Tensor]:
    """Recording-level accuracy, macro F1 and MCC of the recordings' answers by ``rule``
    (see :func:`aggregate_by_recording`)."""
    _, scores, labels = aggregate_by_recording(recording, probs, target, rule)
    preds = scores.argmax(dim=1)
    c = probs.shape[1]
    return {
        f"{prefix}/recording_accuracy": multiclass_accuracy(preds, labels, c, average="micro"),
        f"{prefix}/recording_f1_macro": multiclass_f1_score(preds, labels, c, average="macro"),
        f"{prefix}/recording_mcc": multiclass_matthews_corrcoef(preds, labels, c),
    }
