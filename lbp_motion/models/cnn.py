"""The TUG method's 1-D convolutional baseline."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lbp_motion.models.common import SequenceClassifier, full_mask, masked_mean


class CNN1DClassifier(SequenceClassifier):
    """Temporal 1-D CNN: blocks of Conv1d + BatchNorm + ReLU over frames, masked mean
    pooling over time, linear head. Masked frames are zeroed before each block.

    Args:
        in_features: features per frame F (the convolution's input channels).
        num_classes: output classes.
        channels: output channels of each block.
        kernel_size: temporal kernel (odd; 'same' padding keeps T).
        dropout: before the head.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        channels: Sequence[int] = (64, 128, 128),
        kernel_size: int = 5,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size} must be odd")
        blocks, width = [], in_features
        for c in channels:
            blocks.append(
                nn.Sequential(
                    nn.Conv1d(width, c, kernel_size, padding=kernel_size // 2),
                    nn.BatchNorm1d(c),
                    nn.ReLU(),
                )
            )
            width = c
        self.blocks = nn.ModuleList(blocks)
        self.feature_dim = width
        self.build_head(num_classes, dropout)

    def features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        mask = full_mask(x, mask)
        m = mask.unsqueeze(1).to(x.dtype)  # (B, 1, T)
        h = x.transpose(1, 2)  # (B, F, T)
        for block in self.blocks:
            h = block(h * m)
        return masked_mean(h.transpose(1, 2), mask)
