"""Several sequence classifiers ("channels") whose pooled features are concatenated
for one final linear classifier: PLAAN's multiple-instance learning network."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lbp_motion.models.common import SequenceClassifier


class MultiChannelClassifier(SequenceClassifier):
    """``channels`` (each following the model convention, with ``features`` and
    ``feature_dim``) side by side; :meth:`features` is the concatenation of their
    features (B, sum of feature_dim), read by a linear head of ``num_classes``.

    Each channel keeps its own head, so it can also be trained alone
    (``channels[k](x, mask)``).
    """

    def __init__(
        self, channels: Sequence[nn.Module], num_classes: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError("MultiChannelClassifier needs at least one channel")
        self.channels = nn.ModuleList(channels)
        self.feature_dim = sum(int(c.feature_dim) for c in self.channels)
        self.build_head(num_classes, dropout)

    def features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return torch.cat([c.features(x, mask) for c in self.channels], dim=-1)
