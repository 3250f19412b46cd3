"""LSTM encoder-decoder for PLAAN's reconstruction-based anomaly score.

The encoder (stacked LSTM) reads the real frames of a sequence and keeps the output at
the last real frame; an optional dense stack (``dense_sizes``, Linear + ReLU each: the
"DNN" of PLAAN's LSTM-DNN encoder-decoder) and a dense layer map it to a latent vector
(``features``). The
decoder repeats the latent vector at every frame, runs a stacked LSTM over it and maps
each step back to the ``F`` input features (:meth:`LSTMAutoencoder.reconstruct`). So
the whole sequence has to pass through one vector: a bottleneck that a model trained
on normal movement reconstructs normal movement through better than anomalous.

``forward(x, mask)`` follows the model convention (``docs/models.md``): logits of a
linear head on the latent vector, here used for the joint exercise-type loss
(``num_classes`` = the exercise types).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lbp_motion.models.common import SequenceClassifier, full_mask
from lbp_motion.models.recurrent import StackedLSTM, pool_sequence


class LSTMAutoencoder(SequenceClassifier):
    """LSTM encoder-decoder with a latent bottleneck and a classification head.

    Args:
        in_features: features per frame F (also the reconstruction's width).
        num_classes: outputs of the head on the latent vector (e.g. 9 exercise types).
        hidden_sizes: widths of the encoder's LSTM layers; the decoder uses them reversed.
        latent_size: width of the latent vector (``feature_dim``).
        dense_sizes: widths of dense layers between the encoder and the latent layer
            (none by default).
        dropout: between LSTM layers and before the head.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        hidden_sizes: Sequence[int] = (128, 64),
        latent_size: int = 32,
        dense_sizes: Sequence[int] = (),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.encoder = StackedLSTM(in_features, hidden_sizes, dropout=dropout)
        layers: list[nn.Module] = []
        width = self.encoder.output_dim
        for size in dense_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.to_latent = nn.Sequential(*layers, nn.Linear(width, latent_size), nn.Tanh())
        self.decoder = StackedLSTM(latent_size, list(hidden_sizes)[::-1], dropout=dropout)
        self.to_frames = nn.Linear(self.decoder.output_dim, in_features)
        self.feature_dim = latent_size
        self.build_head(num_classes, dropout)

    def features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """The latent vector (B, latent_size) from the encoder's last real frame."""
        mask = full_mask(x, mask)
        return self.to_latent(pool_sequence(self.encoder(x, mask), mask, "last"))

    def reconstruct(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """The reconstruction (B, T, F) of ``x``; zeros past each sequence's last real frame."""
        mask = full_mask(x, mask)
        latent = self.features(x, mask)
        repeated = latent.unsqueeze(1).expand(-1, x.shape[1], -1).contiguous()
        out = self.to_frames(self.decoder(repeated, mask))
        return out * mask.unsqueeze(-1).to(out.dtype)
