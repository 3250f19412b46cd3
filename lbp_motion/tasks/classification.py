"""ClassificationTask: one label per window, any sequence model by class_path."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lbp_motion.errors import ConfigError
from lbp_motion.evaluation.decisions import save_confusion_matrix
from lbp_motion.evaluation.metrics import (
    RecordingRule,
    check_recording_rule,
    classification_metrics,
    confusion_matrix_metric,
    flatten_metrics,
    recording_metrics,
)
from lbp_motion.evaluation.outputs import StepOutput
from lbp_motion.models import ModelFactory
from lbp_motion.tasks.base import BaseTask


def _default_model(in_features: int, num_classes: int) -> nn.Module:
    from lbp_motion.models import TransformerClassifier

    return TransformerClassifier(in_features, num_classes)


class ClassificationTask(BaseTask):
    """Classify windows (e.g. LBP severity from TUG clips) and, by combining window
    probabilities (``recording_rule``), whole recordings.

    Args:
        model: the network, by class_path, called as ``model(in_features, num_classes)``
            (see :mod:`lbp_motion.models.common`); default: the TUG attention model.
        class_weighted_loss: weight the cross-entropy by the DataModule's inverse class
            frequencies of the training split.
        label_smoothing: of the cross-entropy.
        recording_rule: how the windows of a recording make its one answer, for the
            ``recording_*`` metrics and ``recording_predictions.csv``: ``mean_prob``
            (mean window probability; default), ``mean_log_prob`` (mean
            log-probability, renormalised) or ``majority`` (vote of the window
            argmaxes, ties by mean probability); see
            :func:`~lbp_motion.evaluation.metrics.aggregate_by_recording`.
        data_spec, lr, weight_decay, lr_decay, optimizer, lr_scheduler: see
            :class:`~lbp_motion.tasks.base.BaseTask`.
    """

    #: the sample this task reads: ``data.unit`` must match (``window``; ``recording``
    #: for :class:`~lbp_motion.tasks.recording.RecordingTask`)
    unit = "window"
    #: ``compute_loss`` below neither logs nor keeps state, so federated clients can be
    #: trained together (:mod:`lbp_motion.federated.vectorized`); a subclass that
    #: overrides ``compute_loss`` says so again, or is not vectorised
    pure_compute_loss = True

    def __init__(
        self,
        model: ModelFactory = _default_model,
        class_weighted_loss: bool = False,
        label_smoothing: float = 0.0,
        recording_rule: RecordingRule = "mean_prob",
        **kwargs: Any,
    ) -> None:
        check_recording_rule(recording_rule, f"{type(self).__name__}: recording_rule")
        unit = (kwargs.get("data_spec") or {}).get("unit", "window")
        if unit != self.unit:
            hint = (
                "use lbp_motion.tasks.recording.RecordingTask"
                if unit == "recording"
                else "set data.unit: recording"
            )
            raise ConfigError(
                f"{type(self).__name__} reads {self.unit}s but data.unit is {unit!r}; {hint}"
            )
        self.model_factory = model
        super().__init__(**kwargs)

    @property
    def classes(self) -> list[str]:
        return list(self.spec_value("classes"))

    @property
    def recording_rule(self) -> str:
        """The rule that makes one answer per recording (read by ``PredictionFiles``)."""
        return self.hparams.get("recording_rule", "mean_prob")

    def configure_models(self) -> None:
        self.model = self.model_factory(int(self.spec_value("num_features")), len(self.classes))

    def configure_losses(self) -> None:
        self.register_buffer("class_weight", torch.ones(len(self.classes)), persistent=False)

    def configure_metrics(self) -> None:
        n = len(self.classes)
        # ModuleDict keys may not shadow nn.Module attributes such as .train: "<stage>_"
        self.metrics = nn.ModuleDict(
            {f"{stage}_": classification_metrics(n) for stage in ("train", "val", "test")}
        )
        self.confusion = nn.ModuleDict(
            {f"{stage}_": confusion_matrix_metric(n) for stage in ("val", "test")}
        )

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule
        # without a DataModule (fine-tuning on one clinic's loader) the weights are kept
        if self.hparams.class_weighted_loss and stage == "fit" and dm is not None:
            self.class_weight = dm.class_weights().to(self.device)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.model(x, mask)

    def model_feature_dim(self) -> int:
        """The model's ``feature_dim``, for a head on its features; a ConfigError naming
        this task when the model has no ``features``/``feature_dim``."""
        feature_dim = getattr(self.model, "feature_dim", None)
        if feature_dim is None or not hasattr(self.model, "features"):
            raise ConfigError(
                f"{type(self).__name__}: {type(self.model).__name__} has no features()/feature_dim; "
                "a head of this task reads model.features(x, mask) (see docs/models.md)"
            )
        return int(feature_dim)

    def main_and_features(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Main-head logits (B, C) and the shared features (B, feature_dim), from one pass
        of the encoder when the model has a ``head`` reading its ``features`` (every
        :class:`~lbp_motion.models.SequenceClassifier`)."""
        features = self.model.features(x, mask)
        head = getattr(self.model, "head", None)
        logits = head(features) if head is not None else self.model(x, mask)
        return logits, features

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return nn.functional.cross_entropy(
            logits, y, weight=self.class_weight, label_smoothing=self.hparams.label_smoothing
        )

    def compute_loss(self, batch: dict[str, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        """Logits of the main head (B, C) and the loss to optimise on ``batch``.

        The hook a subclass overrides to add loss terms or heads (see
        :class:`~lbp_motion.tasks.joint.JointTask`): the logged ``<stage>/loss`` is the
        returned loss, and the metrics, confusion matrices and recording-level outputs
        are computed from the returned logits.
        """
        logits = self(batch["x"], batch["mask"])
        return logits, self.loss(logits, batch["y"])

    def step(self, batch: dict[str, Tensor], stage: str) -> StepOutput:
        logits, loss = self.compute_loss(batch, stage)
        return self.record_step(stage, batch, logits, loss)

    def record_step(
        self, stage: str, batch: dict[str, Tensor], logits: Tensor, loss: Tensor
    ) -> StepOutput:
        """Log the loss and update ``stage``'s metrics from one step's logits (also
        called by vectorised federated training, which computes them itself)."""
        self.log(
            f"{stage}/loss",
            loss,
            on_step=False,
            on_epoch=True,
            batch_size=len(batch["y"]),
            prog_bar=stage != "test",
        )
        self.metrics[f"{stage}_"].update(logits, batch["y"])
        if f"{stage}_" in self.confusion:
            self.confusion[f"{stage}_"].update(logits, batch["y"])
        return StepOutput(
            loss=loss,
            target=batch["y"],
            recording=batch["recording"],
            # evaluation reads probabilities of validation and test steps only
            probs=None if stage == "train" else logits.detach().softmax(dim=-1),
        )

    def predict_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor]:
        probs = self(batch["x"], batch["mask"]).softmax(dim=-1)
        out = {"recording": batch["recording"], "start": batch["start"], "probs": probs}
        if "y" in batch:
            out["y"] = batch["y"]
        return out

    def evaluate(self, stage: str, outputs: dict[str, Tensor] | None) -> None:
        """Window metrics from the torchmetrics objects (synchronised across processes by
        torchmetrics), recording metrics from the gathered probabilities, and at test
        the confusion matrix files."""
        values = flatten_metrics(self.metrics[f"{stage}_"].compute(), self.classes, stage)
        self.metrics[f"{stage}_"].reset()
        if outputs is not None:
            values.update(
                recording_metrics(
                    outputs["recording"],
                    outputs["probs"],
                    outputs["target"],
                    stage,
                    self.recording_rule,
                )
            )
        self.log_dict(values, prog_bar=False)
        if f"{stage}_" in self.confusion:
            matrix = self.confusion[f"{stage}_"].compute().cpu()
            self.confusion[f"{stage}_"].reset()
            if stage == "test":
                save_confusion_matrix(self, matrix, self.classes, stage)

    def reset_metrics(self, stage: str) -> None:
        self.metrics[f"{stage}_"].reset()
        if f"{stage}_" in self.confusion:
            self.confusion[f"{stage}_"].reset()
