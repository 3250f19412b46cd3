"""Window statistics as a model: the features of ``lbp cv``'s statistics baselines,
standardised, then a linear head.

:func:`window_statistics` is the one implementation of those features (the baselines
of :mod:`lbp_motion.evaluation.baselines` call it too). :class:`WindowStatisticsClassifier`
makes them a model of the convention of :mod:`.common`: with
:class:`~lbp_motion.tasks.ClassificationTask` it is a logistic regression on windows;
as the encoder of :class:`~lbp_motion.tasks.recording.RecordingTask` with mean pooling
it is a logistic regression on the mean statistics of each recording (the recording-
statistics baseline), trained by gradient descent, so that it can be saved, used by
``lbp predict`` and trained federated like any other model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lbp_motion.models.common import SequenceClassifier


def window_statistics(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """(N, T, F) windows and (N, T) real-frame masks -> (N, 3F): per channel the mean,
    the standard deviation (ddof 0) and the mean absolute frame-to-frame difference over
    the real frames (zeros where a window has no real frame, or no two consecutive
    ones). Computed in ``x``'s dtype; NaN and infinities count as 0."""
    x = torch.nan_to_num(x)
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    m = mask.to(x.dtype).unsqueeze(-1)
    n = m.sum(dim=1).clamp_min(1.0)
    mean = (x * m).sum(dim=1) / n
    std = ((((x - mean.unsqueeze(1)) ** 2) * m).sum(dim=1) / n).sqrt()
    pair = m[:, 1:] * m[:, :-1]
    motion = ((x[:, 1:] - x[:, :-1]).abs() * pair).sum(dim=1) / pair.sum(dim=1).clamp_min(1.0)
    return torch.cat([mean, std, motion], dim=1)


class WindowStatisticsClassifier(SequenceClassifier):
    """:func:`window_statistics` of each window, standardised by a batch normalisation
    without affine parameters (its running mean and variance, like a ``StandardScaler``
    fitted on the training windows, are used at evaluation), then a linear head.

    It has nothing to learn but the head: with few subjects it cannot memorise a
    person's trajectory, only coarse posture and amount of movement.

    Args:
        in_features: channels per frame.
        num_classes: outputs.
        dropout: before the head.
    """

    def __init__(self, in_features: int, num_classes: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.feature_dim = 3 * in_features
        # momentum None: the running mean and variance are averages over every training
        # batch seen, not a moving average of the last few
        self.standardise = nn.BatchNorm1d(self.feature_dim, affine=False, momentum=None)
        self.build_head(num_classes, dropout)

    def features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        # the square root's gradient is infinite at 0 (a constant channel): features
        # are inputs here, nothing before them learns
        stats = window_statistics(x, mask).detach()
        norm = self.standardise
        if self.training and len(stats) < 2:
            # one window in a training batch (a one-window recording alone in the last
            # batch) has no spread of its own: the statistics so far, not updated
            return nn.functional.batch_norm(
                stats, norm.running_mean, norm.running_var, training=False, eps=norm.eps
            )
        return norm(stats)
