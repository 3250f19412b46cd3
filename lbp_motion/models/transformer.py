"""The TUG method's attention model: a transformer encoder over the frames of a clip."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lbp_motion.models.common import SequenceClassifier, full_mask, masked_mean


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sine/cosine position codes (Vaswani et al.), added to (B, T, D) inputs."""

    def __init__(self, d_model: int, max_len: int = 1024) -> None:
        super().__init__()
        pos = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)[:, : d_model // 2]
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.pe[: x.shape[1]]


class LearnedPositionalEncoding(nn.Module):
    """One learned vector per frame position, added to (B, T, D) inputs."""

    def __init__(self, d_model: int, max_len: int = 1024) -> None:
        super().__init__()
        self.pe = nn.Parameter(torch.zeros(max_len, d_model))
        nn.init.normal_(self.pe, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.pe[: x.shape[1]]


class TransformerClassifier(SequenceClassifier):
    """Transformer-encoder classifier over frames ("attention model" of the TUG method).

    Each frame's features (for TUG: x, y and a visibility flag of every joint, with
    masked joints zeroed) are projected to ``d_model``, given a position code and
    passed through ``num_layers`` post-norm encoder blocks (multi-head self-attention,
    add & norm, feed-forward, add & norm). Frames where ``mask`` is False are excluded
    from attention (key padding) and from the mean pooling that feeds the head.

    Args:
        in_features: features per frame F.
        num_classes: output classes.
        d_model: width of the encoder.
        num_layers: encoder blocks (SPEC: 9).
        num_heads: attention heads (SPEC: 8); must divide ``d_model``.
        dim_feedforward: hidden width of each block's feed-forward; default 2 x d_model.
        dropout: dropout inside the blocks and before the head.
        positional: ``"sinusoidal"``, ``"learned"`` or ``"none"``.
        max_len: longest clip the position code supports.
        pooling: ``"mean"`` (masked mean over frames) or ``"cls"`` (a learned token).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        d_model: int = 64,
        num_layers: int = 9,
        num_heads: int = 8,
        dim_feedforward: int | None = None,
        dropout: float = 0.1,
        positional: str = "sinusoidal",
        max_len: int = 1024,
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        if positional not in {"sinusoidal", "learned", "none"}:
            raise ValueError(
                f"positional={positional!r}; expected 'sinusoidal', 'learned' or 'none'"
            )
        if pooling not in {"mean", "cls"}:
            raise ValueError(f"pooling={pooling!r}; expected 'mean' or 'cls'")
        self.pooling = pooling
        self.input = nn.Sequential(nn.Linear(in_features, d_model), nn.LayerNorm(d_model))
        self.position: nn.Module
        if positional == "sinusoidal":
            self.position = SinusoidalPositionalEncoding(d_model, max_len + 1)
        elif positional == "learned":
            self.position = LearnedPositionalEncoding(d_model, max_len + 1)
        else:
            self.position = nn.Identity()
        if pooling == "cls":
            self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model,
            num_heads,
            dim_feedforward=dim_feedforward or 2 * d_model,
            dropout=dropout,
            batch_first=True,
            norm_first=False,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.feature_dim = d_model
        self.build_head(num_classes, dropout)

    def features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        mask = full_mask(x, mask)
        h = self.input(x)
        if self.pooling == "cls":
            h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1), h], dim=1)
            mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
        h = self.position(h)
        h = self.encoder(h, src_key_padding_mask=~mask)
        if self.pooling == "cls":
            return h[:, 0]
        return masked_mean(h, mask)
