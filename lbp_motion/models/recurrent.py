"""Recurrent sequence classifiers (the TUG method's LSTM baseline; PLAAN's family)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .common import SequenceClassifier, full_mask, lengths_from_mask, masked_mean


class StackedLSTM(nn.Module):
    """LSTM layers of possibly different widths (e.g. 1024-512-256), applied in turn.

    Sequences are packed by length (the last real frame of ``mask``), so padding at the
    end never reaches the state. Output (B, T, D_last) with zeros past each length.
    """

    def __init__(
        self,
        in_features: int,
        hidden_sizes: Sequence[int],
        *,
        bidirectional_first: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not hidden_sizes:
            raise ValueError("hidden_sizes must name at least one layer")
        layers, width = [], in_features
        for i, size in enumerate(hidden_sizes):
            bi = bidirectional_first and i == 0
            layers.append(nn.LSTM(width, size, batch_first=True, bidirectional=bi))
            width = size * (2 if bi else 1)
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = width

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        lengths = lengths_from_mask(mask).cpu()
        h = x
        for i, lstm in enumerate(self.layers):
            packed = pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
            out, _ = lstm(packed)
            h, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
            if i < len(self.layers) - 1:
                h = self.dropout(h)
        return h


class LSTMClassifier(SequenceClassifier):
    """Stacked LSTM over frames, masked mean of the outputs, linear head.

    Args:
        in_features: features per frame F.
        num_classes: output classes.
        hidden_sizes: width of each LSTM layer.
        bidirectional: make the first layer bidirectional (PLAAN's Bi-LSTM).
        dropout: between layers and before the head.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        hidden_sizes: Sequence[int] = (128, 64, 128),
        bidirectional: bool = False,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.encoder = StackedLSTM(
            in_features, hidden_sizes, bidirectional_first=bidirectional, dropout=dropout
        )
        self.feature_dim = self.encoder.output_dim
        self.build_head(num_classes, dropout)

    def features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        mask = full_mask(x, mask)
        return masked_mean(self.encoder(x, mask), mask)
