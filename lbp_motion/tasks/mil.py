"""MILTask: PLAAN's multiple-instance learning over three differently balanced channels.

Three channels of one architecture (default: LSTM-DNN) each see the training data
resampled its own way: positively skewed (anomalous : normal = 3 : 1), negatively
skewed (1 : 3) and SMOTE-balanced. "Anomalous" is every class but ``normal_class``
(protective behaviour; low and high pain). Their pooled features are concatenated and
a linear classifier on them makes the prediction
(:class:`~lbp_motion.models.MultiChannelClassifier`).

Resampling is done per training batch, from the batch's own samples
(:func:`skewed_indices`, :func:`smote_batch`): no data outside the batch are needed,
so the task also trains federated, each client resampling its own data. A batch keeps
its size in the skewed channels; the SMOTE channel gets every class up to the batch's
largest class.

Training loss: ``CE(final head on the real batch) + channel_weight x sum_k CE(channel k
on its resampled batch)``. With ``detach_channels`` (default) the final head reads the
channels' features without gradient, so each channel learns from its own resampled
data only. Validation, test and predict use the final head.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lbp_motion.errors import ConfigError
from lbp_motion.models import ModelFactory
from lbp_motion.tasks.base import tiny_emopain, tiny_lstm_dnn
from lbp_motion.tasks.classification import ClassificationTask


def skewed_indices(positive: Tensor, positive_share: float, size: int | None = None) -> Tensor:
    """Indices (``size``,) drawn with replacement so that ``round(positive_share * size)``
    of them are positive (``positive`` (N,) bool) and the rest negative, shuffled.
    Without any positive or any negative sample it draws uniformly from all."""
    if not 0.0 <= positive_share <= 1.0:
        raise ConfigError(
            f"MILTask: positive share {positive_share}; expected a fraction in [0, 1]"
        )
    positive = positive.bool()
    n = len(positive) if size is None else int(size)
    pos = torch.nonzero(positive).flatten()
    neg = torch.nonzero(~positive).flatten()
    if len(pos) == 0 or len(neg) == 0:
        return torch.randint(len(positive), (n,))
    n_pos = int(round(positive_share * n))
    idx = torch.cat(
        [pos[torch.randint(len(pos), (n_pos,))], neg[torch.randint(len(neg), (n - n_pos,))]]
    )
    return idx[torch.randperm(n)]


def oversample_indices(y: Tensor) -> Tensor:
    """Indices with every present class drawn (with replacement) up to the largest
    class's count; the largest class keeps its samples."""
    classes, counts = torch.unique(y, return_counts=True)
    top = int(counts.max())
    parts = []
    for c, k in zip(classes.tolist(), counts.tolist()):
        members = torch.nonzero(y == c).flatten()
        extra = members[torch.randint(k, (top - k,))] if top > k else members[:0]
        parts += [members, extra]
    return torch.cat(parts)


def smote_batch(x: Tensor, mask: Tensor, y: Tensor, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """The batch SMOTE-balanced (:func:`lbp_motion.transforms.balance.balance_sequences`; every
    class up to the largest); random over-sampling instead when SMOTE cannot run (a
    class with fewer than 2 samples). Returns ``x``, ``mask``, ``y``."""
    from lbp_motion.transforms.balance import balance_sequences

    counts = torch.bincount(y)
    present = counts[counts > 0]
    if len(present) >= 2 and int(present.min()) >= 2 and int(present.min()) < int(present.max()):
        try:
            res = balance_sequences(
                x.detach().cpu().numpy(),
                mask.cpu().numpy(),
                y.cpu().numpy(),
                method="smote",
                seed=seed,
            )
            return (
                torch.from_numpy(res.x).to(x.device),
                torch.from_numpy(np.asarray(res.mask)).to(mask.device),
                torch.from_numpy(res.y).to(y.device),
            )
        except (ConfigError, ValueError):
            pass
    idx = oversample_indices(y.cpu()).to(y.device)
    return x[idx], mask[idx], y[idx]


def _default_channel(in_features: int, num_classes: int) -> nn.Module:
    from lbp_motion.models import LSTMDNNClassifier

    return LSTMDNNClassifier(in_features, num_classes)


class MILTask(ClassificationTask):
    """PLAAN's multiple-instance learning: three channels trained on positively skewed
    (3:1), negatively skewed (1:3) and SMOTE-balanced data, their features concatenated
    for the final classifier.

    Metrics, confusion matrix and predictions are :class:`ClassificationTask`'s, of the
    final classifier; training also logs ``train/channel_<name>_loss``.

    Args:
        model: one channel, by class_path, ``model(num_features, num_classes)`` with
            ``features``/``feature_dim`` (default: LSTM-DNN); built three times.
        positive_share: share of anomalous samples in the positively skewed channel (0.75 = 3:1).
        negative_share: share of anomalous samples in the negatively skewed channel (0.25 = 1:3).
        normal_class: index of the normal class; every other class counts as anomalous.
        channel_weight: weight of the channels' own losses.
        detach_channels: the final classifier does not train the channels.
        class_weighted_loss, label_smoothing, data_spec, lr, ...: see
            :class:`ClassificationTask` (they apply to the final classifier).
    """

    CHANNELS = ("positive", "negative", "smote")

    def __init__(
        self,
        model: ModelFactory = _default_channel,
        positive_share: float = 0.75,
        negative_share: float = 0.25,
        normal_class: int = 0,
        channel_weight: float = 1.0,
        detach_channels: bool = True,
        **kwargs: Any,
    ) -> None:
        for name, share in (("positive_share", positive_share), ("negative_share", negative_share)):
            if not 0.0 <= share <= 1.0:
                raise ConfigError(f"MILTask: {name}={share}; expected a fraction in [0, 1]")
        super().__init__(model=model, **kwargs)

    @classmethod
    def conformance_config(cls) -> dict[str, Any]:
        """Tiny synthetic EmoPain data (protective task), small LSTM-DNN channels."""
        return cls.config_with(tiny_emopain("protective"), model=tiny_lstm_dnn())

    def configure_models(self) -> None:
        from lbp_motion.models import MultiChannelClassifier

        f, c = int(self.spec_value("num_features")), len(self.classes)
        if not 0 <= self.hparams.normal_class < c:
            raise ConfigError(
                f"MILTask: normal_class={self.hparams.normal_class}; expected an index into {self.classes}"
            )
        channels = [self.model_factory(f, c) for _ in self.CHANNELS]
        for ch in channels:
            if not hasattr(ch, "features") or not hasattr(ch, "feature_dim"):
                raise ConfigError(f"MILTask: {type(ch).__name__} has no features()/feature_dim")
        self.model = MultiChannelClassifier(channels, c)

    def channel_batches(self, batch: dict[str, Tensor]) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
        """The batch resampled for each channel: name -> (x, mask, y)."""
        x, mask, y = batch["x"], batch["mask"], batch["y"]
        positive = y != self.hparams.normal_class
        out = {}
        for name, share in (
            ("positive", self.hparams.positive_share),
            ("negative", self.hparams.negative_share),
        ):
            idx = skewed_indices(positive.cpu(), share).to(y.device)
            out[name] = (x[idx], mask[idx], y[idx])
        out["smote"] = smote_batch(x, mask, y, seed=int(self.global_step))
        return out

    def compute_loss(self, batch: dict[str, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        if stage != "train":
            return super().compute_loss(batch, stage)
        x, mask, y = batch["x"], batch["mask"], batch["y"]
        total = torch.zeros((), device=x.device)
        for (name, (xk, mk, yk)), channel in zip(
            self.channel_batches(batch).items(), self.model.channels
        ):
            loss_k = nn.functional.cross_entropy(channel(xk, mk), yk)
            self.log(
                f"train/channel_{name}_loss",
                loss_k,
                on_step=False,
                on_epoch=True,
                batch_size=len(yk),
            )
            total = total + self.hparams.channel_weight * loss_k
        features = self.model.features(x, mask)
        if self.hparams.detach_channels:
            features = features.detach()
        logits = self.model.head(features)
        final = self.loss(logits, y)
        self.log("train/final_loss", final, on_step=False, on_epoch=True, batch_size=len(y))
        return logits, final + total
