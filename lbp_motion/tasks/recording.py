"""RecordingTask: one answer per recording from its pooled window embeddings.

For labels that belong to the person rather than the moment (LBP severity, TUG time):
a window encoder (any model of :mod:`lbp_motion.models` with ``features`` and
``feature_dim``) embeds every window of a recording, the embeddings are pooled over
the recording (masked mean, or gated attention) and a linear head classifies the
recording. The loss is one cross-entropy per recording, so a person with many windows
does not outweigh one with few, and the model is not rewarded for recognising who is
walking from single windows.

It needs ``data.unit: recording`` (:class:`~lbp_motion.datamodules.tug.RecordingBags`).
Metrics and files keep :class:`~.classification.ClassificationTask`'s names: a
sample is a recording, so ``<stage>/accuracy`` and ``<stage>/recording_accuracy``
agree, and ``predictions.csv`` has one row per recording (``start`` 0), which ``lbp
cv`` pools like window rows.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from lbp_motion.errors import ConfigError
from lbp_motion.models import ModelFactory
from lbp_motion.tasks.base import tiny_tug
from lbp_motion.tasks.classification import ClassificationTask, _default_model


class RecordingClassifier(nn.Module):
    """``encoder`` on every real window of each bag, embeddings pooled per bag, linear head.

    Args:
        encoder: a window model with ``features(x, mask) -> (N, feature_dim)``.
        num_classes: output classes.
        pooling: ``mean`` (masked mean over the real windows) or ``attention``
            (gated attention pooling, Ilse et al. 2018: weights
            ``softmax(w . (tanh(V h) * sigmoid(U h)))`` over the real windows).
        attention_dim: hidden width of the attention scorer.
        dropout: before the head.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        pooling: Literal["mean", "attention"] = "mean",
        attention_dim: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        d = int(encoder.feature_dim)
        self.feature_dim = d
        if pooling == "attention":
            self.attention_v = nn.Linear(d, attention_dim)
            self.attention_u = nn.Linear(d, attention_dim)
            self.attention_w = nn.Linear(attention_dim, 1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d, num_classes))

    def window_embeddings(self, x: Tensor, mask: Tensor, window_mask: Tensor) -> Tensor:
        """(B, W, D) embeddings of the windows; padded windows are not encoded (zeros)."""
        b, w = window_mask.shape
        h = self.encoder.features(x[window_mask], mask[window_mask])
        out = h.new_zeros(b, w, h.shape[-1])
        out[window_mask] = h
        return out

    def window_weights(self, h: Tensor, window_mask: Tensor) -> Tensor:
        """(B, W) pooling weights: uniform (mean) or attention over the real windows; 0 on padding."""
        if self.pooling == "mean":
            scores = torch.zeros(window_mask.shape, dtype=h.dtype, device=h.device)
        else:
            gate = torch.tanh(self.attention_v(h)) * torch.sigmoid(self.attention_u(h))
            scores = self.attention_w(gate).squeeze(-1)
        return scores.masked_fill(~window_mask, float("-inf")).softmax(dim=1)

    def features(self, x: Tensor, mask: Tensor, window_mask: Tensor | None = None) -> Tensor:
        """(B, D) recording embeddings; ``x`` (B, W, T, F), ``mask`` (B, W, T), ``window_mask`` (B, W)."""
        if window_mask is None:
            window_mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        window_mask = window_mask.bool()
        if not bool(window_mask.any(dim=1).all()):
            raise ValueError("RecordingClassifier: a bag without any real window")
        h = self.window_embeddings(x, mask.bool(), window_mask)
        return (self.window_weights(h, window_mask).unsqueeze(-1) * h).sum(dim=1)

    def forward(self, x: Tensor, mask: Tensor, window_mask: Tensor | None = None) -> Tensor:
        return self.head(self.features(x, mask, window_mask))


class RecordingTask(ClassificationTask):
    """Classify whole recordings from their pooled window embeddings (person-level
    labels such as severity); needs ``data.unit: recording``.

    Args:
        model: the window encoder, by class_path, ``model(num_features, num_classes)``
            with ``features``/``feature_dim`` (any :class:`~lbp_motion.models.SequenceClassifier`;
            its own head is unused); default: the TUG attention model.
        pooling: ``mean`` or ``attention`` over the windows of a recording.
        attention_dim: hidden width of the attention pooling.
        head_dropout: dropout before the recording head.
        class_weighted_loss, label_smoothing, data_spec, lr, ...: see
            :class:`ClassificationTask` (class weights count recordings).
            ``recording_rule`` has no effect: each recording is one sample.
    """

    unit = "recording"

    def __init__(
        self,
        model: ModelFactory = _default_model,
        pooling: Literal["mean", "attention"] = "mean",
        attention_dim: int = 64,
        head_dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        if pooling not in ("mean", "attention"):
            raise ConfigError(f"RecordingTask: pooling={pooling!r}; expected mean or attention")
        if attention_dim < 1:
            raise ConfigError(f"RecordingTask: attention_dim={attention_dim}; expected at least 1")
        super().__init__(model=model, **kwargs)

    @classmethod
    def conformance_config(cls) -> dict[str, Any]:
        """Tiny synthetic TUG recordings as bags of at most 8 windows, a small transformer."""
        transformer = {
            "class_path": "lbp_motion.models.TransformerClassifier",
            "init_args": {"d_model": 16, "num_layers": 1, "num_heads": 2},
        }
        return cls.config_with(
            tiny_tug(unit="recording", max_windows=8, batch_size=4), model=transformer
        )

    def configure_models(self) -> None:
        encoder = self.model_factory(int(self.spec_value("num_features")), len(self.classes))
        if not hasattr(encoder, "features") or not hasattr(encoder, "feature_dim"):
            raise ConfigError(
                f"RecordingTask: {type(encoder).__name__} has no features()/feature_dim"
            )
        self.model = RecordingClassifier(
            encoder,
            len(self.classes),
            pooling=self.hparams.pooling,
            attention_dim=self.hparams.attention_dim,
            dropout=self.hparams.head_dropout,
        )

    def forward(
        self, x: Tensor, mask: Tensor | None = None, window_mask: Tensor | None = None
    ) -> Tensor:
        if mask is None:
            mask = torch.ones(x.shape[:3], dtype=torch.bool, device=x.device)
        return self.model(x, mask, window_mask)

    pure_compute_loss = True  # no logging, no state: clients can be vectorised

    def compute_loss(self, batch: dict[str, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        logits = self(batch["x"], batch["mask"], batch["window_mask"])
        return logits, self.loss(logits, batch["y"])

    def predict_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor]:
        probs = self(batch["x"], batch["mask"], batch["window_mask"]).softmax(dim=-1)
        out = {
            "recording": batch["recording"],
            "start": torch.zeros_like(batch["recording"]),
            "probs": probs,
            "windows": batch["window_mask"].sum(dim=1),
        }
        if "y" in batch:
            out["y"] = batch["y"]
        return out
