"""SubjectInvariantTask: window classification that is trained not to tell apart the
training subjects of one class (a class-conditional subject adversary).

With a few dozen people and a label that belongs to the person (LBP severity), every
trait of a training subject (body proportions, gait habits, the camera of their
clinic) predicts their label, so a window model can learn *who is walking* instead of
*how*. This task adds an adversary to :class:`~.classification.ClassificationTask`:
a small head reads the encoder's window features through a gradient-reversal layer
(Ganin et al. 2016, DANN) and tries to name the subject, choosing only among the
training subjects who have windows of the window's own class (conditional invariance,
Li et al. 2018, CIDDG). The head learns to tell those subjects apart; the reversed
gradient pushes the encoder to remove what tells them apart. Since all of them share
the label, removing it costs the label nothing: what is left is what subjects of a
class have in common.

The batches need ``subject`` (integer ids; :class:`~lbp_motion.datamodules.tug.
TUGDataModule` and :class:`~lbp_motion.datamodules.emopain.EmoPainDataModule` provide
them). The adversary is trained and applied on training batches only; validation,
test and prediction are those of :class:`~.classification.ClassificationTask`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from lbp_motion.errors import ConfigError
from lbp_motion.tasks.base import tiny_tug
from lbp_motion.tasks.classification import ClassificationTask


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient times ``-scale`` backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: Tensor, scale: float) -> Tensor:
    """``x`` unchanged, with its gradient multiplied by ``-scale`` on the way back."""
    return _ReverseGradient.apply(x, scale)


def adversary_schedule(progress: float) -> float:
    """DANN's ramp of the reversal strength, 0 at the start of training to ~1 at the
    end: ``2 / (1 + exp(-10 p)) - 1`` for the fraction ``p`` of training done; the
    adversary first learns to name subjects before the encoder is pushed against it."""
    p = min(max(progress, 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0


def same_class_logits(logits: Tensor, y: Tensor, subject_classes: Tensor) -> Tensor:
    """Subject logits (B, S) with every subject not known to have windows of the
    window's class ``y`` set to -inf; ``subject_classes`` (S, C) bool."""
    allowed = subject_classes[:, y].T  # (B, S)
    return logits.masked_fill(~allowed, float("-inf"))


class SubjectInvariantTask(ClassificationTask):
    """Classify windows while a class-conditional subject adversary removes what tells
    the training subjects of one class apart (see the module's description).

    The loss on a training batch is ``CE(main) + CE(subject | same class)``; the
    adversary's gradient reaches the encoder reversed and scaled by
    ``adversary_weight`` times :func:`adversary_schedule` of the training progress.
    Logged per epoch: ``train/main_loss``, ``train/subject_loss`` and
    ``train/subject_accuracy`` (among the subjects of the window's class: high means
    the features still tell them apart).

    Args:
        adversary_weight: the strength of the reversed gradient at the end of the ramp
            (0: the adversary learns but the encoder ignores it, i.e.
            :class:`ClassificationTask` with an extra head).
        max_subjects: size of the subject head; subject ids of the data must be below
            it (the TUG DataModule numbers the subjects of its folder 0, 1, ...).
        hidden: width of the adversary's hidden layer (0: a linear head).
        model, class_weighted_loss, label_smoothing, recording_rule: as in
            :class:`ClassificationTask`.
        data_spec, lr, weight_decay, lr_decay, optimizer, lr_scheduler: see
            :class:`~lbp_motion.tasks.base.BaseTask`.
    """

    # compute_loss logs the adversary's terms and keeps the subject table: not vectorised
    pure_compute_loss = False

    def __init__(
        self,
        adversary_weight: float = 0.3,
        max_subjects: int = 1024,
        hidden: int = 64,
        **kwargs: Any,
    ) -> None:
        if adversary_weight < 0:
            raise ConfigError(
                f"SubjectInvariantTask: adversary_weight={adversary_weight}; expected >= 0"
            )
        if max_subjects < 2:
            raise ConfigError(f"SubjectInvariantTask: max_subjects={max_subjects}; expected >= 2")
        if hidden < 0:
            raise ConfigError(f"SubjectInvariantTask: hidden={hidden}; expected >= 0")
        super().__init__(**kwargs)

    @classmethod
    def conformance_config(cls) -> dict[str, Any]:
        """Tiny synthetic TUG data, a small transformer."""
        transformer = {
            "class_path": "lbp_motion.models.TransformerClassifier",
            "init_args": {"d_model": 16, "num_layers": 1, "num_heads": 2},
        }
        return cls.config_with(tiny_tug(), model=transformer)

    def configure_models(self) -> None:
        super().configure_models()
        d, s, h = self.model_feature_dim(), self.hparams.max_subjects, self.hparams.hidden
        self.subject_head = (
            nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, s)) if h else nn.Linear(d, s)
        )

    def configure_losses(self) -> None:
        super().configure_losses()
        # which training subjects have windows of which class, filled from the batches
        table = torch.zeros(self.hparams.max_subjects, len(self.classes), dtype=torch.bool)
        self.register_buffer("subject_classes", table, persistent=False)

    def reversal_scale(self) -> float:
        """``adversary_weight`` times the ramp at the current step (the full weight
        outside a Trainer)."""
        weight = float(self.hparams.adversary_weight)
        trainer = self._trainer
        if trainer is None:
            return weight
        total = trainer.estimated_stepping_batches
        if not total or math.isinf(total):
            return weight
        return weight * adversary_schedule(trainer.global_step / total)

    def adversary_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Both heads on a training ``batch`` (needs ``subject``), without logging:
        ``logits`` (B, C), ``subject_logits`` (B, S, -inf outside the class),
        ``main_loss``, ``subject_loss`` and ``loss`` (their sum)."""
        if "subject" not in batch:
            raise ConfigError(
                "SubjectInvariantTask: the batch has no 'subject'; use a DataModule whose "
                "batches carry subject ids (TUGDataModule, EmoPainDataModule)"
            )
        subject, y = batch["subject"], batch["y"]
        if int(subject.max()) >= self.hparams.max_subjects or int(subject.min()) < 0:
            raise ConfigError(
                f"SubjectInvariantTask: max_subjects={self.hparams.max_subjects} but the data "
                f"have subject id {int(subject.max())}; set model.init_args.max_subjects above it"
            )
        self.subject_classes[subject, y] = True
        logits, features = self.main_and_features(batch["x"], batch["mask"])
        reversed_features = reverse_gradient(features, self.reversal_scale())
        subject_logits = same_class_logits(
            self.subject_head(reversed_features), y, self.subject_classes
        )
        main_loss = self.loss(logits, y)
        subject_loss = nn.functional.cross_entropy(subject_logits, subject)
        return {
            "logits": logits,
            "subject_logits": subject_logits,
            "main_loss": main_loss,
            "subject_loss": subject_loss,
            "loss": main_loss + subject_loss,
        }

    def compute_loss(self, batch: dict[str, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        if stage != "train":  # held-out subjects: nothing to tell apart
            return super().compute_loss(batch, stage)
        out = self.adversary_losses(batch)
        n = len(batch["y"])
        hits = (out["subject_logits"].argmax(dim=-1) == batch["subject"]).float().mean()
        for name, value in (
            ("main_loss", out["main_loss"]),
            ("subject_loss", out["subject_loss"]),
            ("subject_accuracy", hits),
        ):
            self.log(f"train/{name}", value, on_step=False, on_epoch=True, batch_size=n)
        return out["logits"], out["loss"]
