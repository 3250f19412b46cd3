"""JointTask: PLAAN's joint training, a main head plus an exercise-type head."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from lbp_motion.datasets.emopain.format import EXERCISES
from lbp_motion.errors import ConfigError
from lbp_motion.tasks.base import tiny_emopain, tiny_lstm_dnn
from lbp_motion.tasks.classification import ClassificationTask

#: EmoPain's exercise types (column 71, values 0-8), in label order.
EMOPAIN_EXERCISES = EXERCISES


class JointTask(ClassificationTask):
    """Classify windows (pain level or protective behaviour) while also predicting the
    exercise type from the same features (PLAAN's joint training).

    Both heads read ``model.features(x, mask)``: the main head is the model's own head
    (its classes are ``data_spec["classes"]``), the exercise head a linear layer onto
    ``data_spec["aux_classes"]``, trained on the batch's ``aux`` labels. The loss is
    ``CE(main) + exercise_weight * CE(exercise)``; ``<stage>/loss`` logs this sum and
    ``<stage>/main_loss`` / ``<stage>/exercise_loss`` its parts. Every metric of
    :class:`ClassificationTask` is computed on the main head, plus
    ``<stage>/exercise_accuracy`` per epoch; predictions are the main head's
    probabilities.

    ``exercise_weight=0`` turns joint training off: the exercise head is still built
    (checkpoints keep one layout) but is skipped, so it gets no gradient, batches need
    no ``aux`` and no exercise metric is logged; the task then trains exactly like
    :class:`ClassificationTask`.

    Args:
        exercise_weight: weight of the exercise cross-entropy (SPEC: 1, "the loss is
            the sum"); 0 disables joint training.
        model, class_weighted_loss, label_smoothing: as in :class:`ClassificationTask`;
            the class weights and label smoothing apply to the main head only.
        data_spec, lr, weight_decay, lr_decay, optimizer, lr_scheduler: see
            :class:`~lbp_motion.tasks.base.BaseTask`. ``data_spec`` needs
            ``aux_classes`` (the exercise names) when ``exercise_weight > 0``; without
            it and with weight 0 the head uses EmoPain's 9 exercise types.
    """

    def __init__(self, exercise_weight: float = 1.0, **kwargs: Any) -> None:
        if exercise_weight < 0:
            raise ConfigError(f"JointTask: exercise_weight={exercise_weight}; expected >= 0")
        super().__init__(**kwargs)

    @classmethod
    def conformance_config(cls) -> dict[str, Any]:
        """Tiny synthetic EmoPain data (protective task, batches with ``aux``), joint
        training on, a small LSTM-DNN."""
        return cls.config_with(
            tiny_emopain("protective"), exercise_weight=1.0, model=tiny_lstm_dnn()
        )

    @property
    def joint(self) -> bool:
        """Whether the exercise head is trained (``exercise_weight > 0``)."""
        return self.hparams.exercise_weight > 0

    @property
    def aux_classes(self) -> list[str]:
        if "aux_classes" in self.data_spec:
            return list(self.data_spec["aux_classes"])
        if self.joint:
            raise ConfigError(
                f"JointTask: exercise_weight={self.hparams.exercise_weight} but data_spec has no "
                "'aux_classes'; use a DataModule whose batches carry 'aux' exercise labels (e.g. "
                "EmoPainDataModule), pass data_spec={'aux_classes': [...]}, or set exercise_weight: 0"
            )
        return list(EMOPAIN_EXERCISES)

    def configure_models(self) -> None:
        super().configure_models()
        self.exercise_head = nn.Linear(self.model_feature_dim(), len(self.aux_classes))

    def configure_metrics(self) -> None:
        super().configure_metrics()
        n = len(self.aux_classes)
        self.exercise_metrics = nn.ModuleDict(
            {
                f"{stage}_": MulticlassAccuracy(n, average="micro")
                for stage in ("train", "val", "test")
            }
        )

    def joint_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Both heads on ``batch`` (needs ``aux``), without logging: ``logits`` (B, C),
        ``exercise_logits`` (B, A), ``main_loss``, ``exercise_loss`` and ``loss`` =
        ``main_loss + exercise_weight * exercise_loss``."""
        if "aux" not in batch:
            raise ConfigError(
                "JointTask: the batch has no 'aux' (exercise labels); use a DataModule that "
                "provides them or set exercise_weight: 0"
            )
        logits, features = self.main_and_features(batch["x"], batch["mask"])
        exercise_logits = self.exercise_head(features)
        main_loss = self.loss(logits, batch["y"])
        exercise_loss = nn.functional.cross_entropy(exercise_logits, batch["aux"])
        return {
            "logits": logits,
            "exercise_logits": exercise_logits,
            "main_loss": main_loss,
            "exercise_loss": exercise_loss,
            "loss": main_loss + self.hparams.exercise_weight * exercise_loss,
        }

    def compute_loss(self, batch: dict[str, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        if not self.joint:
            return super().compute_loss(batch, stage)
        out = self.joint_losses(batch)
        n = len(batch["y"])
        self.log(f"{stage}/main_loss", out["main_loss"], on_step=False, on_epoch=True, batch_size=n)
        self.log(
            f"{stage}/exercise_loss",
            out["exercise_loss"],
            on_step=False,
            on_epoch=True,
            batch_size=n,
        )
        metric = self.exercise_metrics[f"{stage}_"]
        metric.update(out["exercise_logits"].detach(), batch["aux"])
        self.log(f"{stage}/exercise_accuracy", metric, on_step=False, on_epoch=True, batch_size=n)
        return out["logits"], out["loss"]
