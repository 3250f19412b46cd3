"""HierarchicalTask: PLAAN's hierarchical pain estimation in two stages.

Stage 1, pain vs no pain, is an anomaly detector (:class:`~.anomaly.AnomalyDetector`:
a score and a threshold); stage 2, low vs high, is a classifier trained on pain
segments only. The three-class answer (:func:`combine_hierarchical`) is ``no_pain``
when stage 1 says no pain, whatever stage 2 says, else ``1 + stage 2``
(``low`` = 1, ``high`` = 2).

Either stage comes from a checkpoint of its own run (``detector_checkpoint``: an
:class:`~.anomaly.AnomalyTask` checkpoint, with its threshold; ``estimator_checkpoint``:
a :class:`~.classification.ClassificationTask` / :class:`~.joint.JointTask` checkpoint
whose classes include ``low`` and ``high``, e.g. trained with
``EmoPainDataModule(keep_classes=[low, high])``) or is trained here, in one fit with the
other: the detector on every segment, the estimator on the pain segments of each batch
only. Stages loaded from checkpoints are frozen unless ``freeze_loaded: false``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from lbp_motion.datasets.emopain.format import PAIN_CLASSES
from lbp_motion.errors import ConfigError
from lbp_motion.evaluation.decisions import decision_metrics, save_confusion
from lbp_motion.evaluation.outputs import StepOutput
from lbp_motion.evaluation.thresholds import RULES
from lbp_motion.models import ModelFactory
from lbp_motion.tasks.anomaly import (
    NUM_EXERCISES,
    AnomalyDetector,
    AnomalyTask,
    _default_autoencoder,
    _default_loss_model,
    binary_auroc,
    choose_threshold,
    save_anomaly_figures,
    store_threshold,
)
from lbp_motion.tasks.base import BaseTask, tiny_emopain, tiny_lstm_dnn
from lbp_motion.tasks.registry import load_task


def load_stage(path: str):
    """The task of a stage checkpoint (:func:`~.registry.load_task`), loaded in a fresh
    context: Lightning keeps the hyperparameters of the task being instantiated (this
    one, inside ``lbp``) in a context variable that the stage's own ``__init__`` would
    otherwise take for its own."""
    import contextvars

    return contextvars.Context().run(load_task, path)


def combine_hierarchical(is_pain: Tensor, stage2_pred: Tensor) -> Tensor:
    """Three-class prediction (B,) from stage 1's ``is_pain`` (B,) bool and stage 2's
    ``stage2_pred`` (B,) (0 low, 1 high): 0 where stage 1 says no pain (stage 2 ignored),
    else ``1 + stage2_pred``."""
    return torch.where(
        is_pain.bool(), 1 + stage2_pred.long(), torch.zeros_like(stage2_pred, dtype=torch.long)
    )


def _default_estimator(in_features: int, num_classes: int) -> nn.Module:
    from lbp_motion.models import LSTMDNNClassifier

    return LSTMDNNClassifier(in_features, num_classes)


class HierarchicalTask(BaseTask):
    """PLAAN's hierarchical pain estimation: an anomaly detector for pain vs no pain,
    then low vs high by a classifier trained on pain data only; three-class metrics.

    Logs the three-class metrics under the usual names (``<stage>/accuracy``,
    ``f1/<class>``, ``f1_macro``, ``mcc``, ...), plus ``<stage>/threshold``,
    ``<stage>/stage1/accuracy`` and ``<stage>/stage1/auroc`` (pain vs no pain) and
    ``<stage>/stage2/accuracy`` (low vs high on the pain segments). Testing writes
    ``confusion_test``, ``roc_test.png`` and ``scores_test.png`` (stage 1).

    Args:
        detector_checkpoint: an AnomalyTask checkpoint for stage 1 (None: train it here).
        estimator_checkpoint: a classifier checkpoint for stage 2 (None: train it here).
        scorer, detector_model, train_on, threshold_rule, threshold_q: stage 1 trained
            here, as in :class:`~.anomaly.AnomalyTask`.
        estimator_model: stage 2 trained here, by class_path (default: LSTM-DNN), called
            ``model(num_features, 2)``.
        exercise_weight: joint exercise-type loss of the stages trained here.
        freeze_loaded: do not train the stages loaded from checkpoints (nor re-select
            stage 1's threshold).
        data_spec, lr, weight_decay, lr_decay, optimizer, lr_scheduler: see
            :class:`~lbp_motion.tasks.base.BaseTask`; the data are the pain task's
            (classes no_pain, low, high).
    """

    def __init__(
        self,
        detector_checkpoint: str | None = None,
        estimator_checkpoint: str | None = None,
        scorer: Literal["loss", "reconstruction"] = "loss",
        detector_model: ModelFactory | None = None,
        estimator_model: ModelFactory | None = None,
        exercise_weight: float = 1.0,
        train_on: Literal["all", "normal"] = "all",
        threshold_rule: Literal["percentile", "f1", "youden"] = "f1",
        threshold_q: float = 95.0,
        freeze_loaded: bool = True,
        **kwargs: Any,
    ) -> None:
        if threshold_rule not in RULES:
            raise ConfigError(
                f"HierarchicalTask: threshold_rule={threshold_rule!r}; expected one of {', '.join(RULES)}"
            )
        self.detector_factory = detector_model
        self.estimator_factory = estimator_model
        super().__init__(**kwargs)

    @classmethod
    def conformance_config(cls) -> dict[str, Any]:
        """Tiny synthetic EmoPain pain data; both stages small and trained here."""
        return cls.config_with(
            tiny_emopain("pain"), detector_model=tiny_lstm_dnn(), estimator_model=tiny_lstm_dnn()
        )

    @property
    def classes(self) -> list[str]:
        return list(self.spec_value("classes"))

    @property
    def num_exercises(self) -> int:
        return len(self.data_spec.get("aux_classes", ())) or NUM_EXERCISES

    # -- stages ----------------------------------------------------------------------
    def _load(self, path: str, what: str):
        task = load_stage(path)
        f = int(self.spec_value("num_features"))
        theirs = task.data_spec.get("num_features")
        if theirs is not None and int(theirs) != f:
            raise ConfigError(
                f"HierarchicalTask: {what} {path} was trained on {theirs} features per frame; these data have {f}"
            )
        return task

    def configure_models(self) -> None:
        if [c.lower() for c in self.classes] != list(PAIN_CLASSES):
            raise ConfigError(
                f"HierarchicalTask: data classes {self.classes}; expected the pain task's {list(PAIN_CLASSES)} "
                "(EmoPainDataModule task: pain, without keep_classes)"
            )
        f = int(self.spec_value("num_features"))
        hp = self.hparams
        if hp.detector_checkpoint:
            task = self._load(hp.detector_checkpoint, "detector_checkpoint")
            if not isinstance(task, AnomalyTask):
                raise ConfigError(
                    f"HierarchicalTask: detector_checkpoint {hp.detector_checkpoint} holds a "
                    f"{type(task).__name__}; expected an AnomalyTask checkpoint"
                )
            self.detector = task.detector
        else:
            factory = self.detector_factory or (
                _default_loss_model if hp.scorer == "loss" else _default_autoencoder
            )
            outputs = 2 if hp.scorer == "loss" else self.num_exercises
            self.detector = AnomalyDetector(hp.scorer, factory(f, outputs), self.num_exercises)
        if hp.estimator_checkpoint:
            task = self._load(hp.estimator_checkpoint, "estimator_checkpoint")
            names = list(getattr(task, "classes", []))
            if "low" not in names or "high" not in names:
                raise ConfigError(
                    f"HierarchicalTask: estimator_checkpoint {hp.estimator_checkpoint} has classes {names}; "
                    "expected 'low' and 'high' among them"
                )
            self.estimator = task.model
            self.estimator_exercise_head = getattr(task, "exercise_head", None)
            columns = [names.index("low"), names.index("high")]
        else:
            self.estimator = (self.estimator_factory or _default_estimator)(f, 2)
            self.estimator_exercise_head = nn.Linear(
                int(self.estimator.feature_dim), self.num_exercises
            )
            columns = [0, 1]
        self.register_buffer("stage2_columns", torch.tensor(columns), persistent=False)
        self.train_detector = not (hp.detector_checkpoint and hp.freeze_loaded)
        self.train_estimator = not (hp.estimator_checkpoint and hp.freeze_loaded)
        for module, trained in (
            (self.detector, self.train_detector),
            (self.estimator, self.train_estimator),
        ):
            module.requires_grad_(trained)
        if self.estimator_exercise_head is not None:
            self.estimator_exercise_head.requires_grad_(self.train_estimator)

    def train(self, mode: bool = True):
        """Frozen stages stay in eval mode (no dropout)."""
        super().train(mode)
        if not getattr(self, "train_detector", True):
            self.detector.eval()
        if not getattr(self, "train_estimator", True):
            self.estimator.eval()
        return self

    def stage2_logits(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Stage 2's (B, 2) logits of [low, high]."""
        return self.estimator(x, mask)[:, self.stage2_columns]

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Three-class predictions (B,) (0 no_pain, 1 low, 2 high)."""
        _, is_pain = self.detector.is_anomalous(x, mask)
        return combine_hierarchical(is_pain, self.stage2_logits(x, mask).argmax(dim=-1))

    # -- losses and steps ----------------------------------------------------------------
    def step(self, batch: dict[str, Tensor], stage: str) -> StepOutput:
        """Both stages' losses (only those of trained stages count), stage 1's scores and
        stage 2's low/high predictions of every sample."""
        hp = self.hparams
        y = batch["y"]
        pain = (y > 0).long()
        total = torch.zeros((), device=y.device)
        out = self.detector.losses(
            batch,
            pain,
            hp.exercise_weight if self.train_detector else 0.0,
            normal_only=hp.train_on == "normal",
        )
        n = len(y)
        self.log(f"{stage}/stage1_loss", out["loss"], on_step=False, on_epoch=True, batch_size=n)
        if self.train_detector:
            total = total + out["loss"]
        has_pain = pain.bool()
        if has_pain.any():
            x, mask = batch["x"][has_pain], batch["mask"][has_pain]
            logits = self.stage2_logits(x, mask)
            stage2 = nn.functional.cross_entropy(logits, y[has_pain] - 1)
            if (
                hp.exercise_weight > 0
                and self.estimator_exercise_head is not None
                and "aux" in batch
            ):
                ex = self.estimator_exercise_head(self.estimator.features(x, mask))
                stage2 = stage2 + hp.exercise_weight * nn.functional.cross_entropy(
                    ex, batch["aux"][has_pain]
                )
            self.log(
                f"{stage}/stage2_loss",
                stage2,
                on_step=False,
                on_epoch=True,
                batch_size=int(has_pain.sum()),
            )
            if self.train_estimator:
                total = total + stage2
        self.log(
            f"{stage}/loss",
            total,
            on_step=False,
            on_epoch=True,
            batch_size=n,
            prog_bar=stage == "train",
        )
        extra = {}
        if stage != "train":
            extra["stage2"] = self.stage2_logits(batch["x"], batch["mask"]).argmax(dim=-1)
        return StepOutput(
            loss=total, target=y, recording=batch["recording"], scores=out["scores"], extra=extra
        )

    def predict_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor]:
        scores, is_pain = self.detector.is_anomalous(batch["x"], batch["mask"])
        preds = combine_hierarchical(
            is_pain, self.stage2_logits(batch["x"], batch["mask"]).argmax(dim=-1)
        )
        out = {
            "recording": batch["recording"],
            "start": batch["start"],
            "probs": nn.functional.one_hot(preds, 3).float(),  # the decision (see docs/anomaly.md)
            "score": scores,
        }
        if "y" in batch:
            out["y"] = batch["y"]
        return out

    # -- epoch ends --------------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        return float(self.detector.threshold)

    def evaluate(self, stage: str, outputs: dict[str, Tensor] | None) -> None:
        """Validation chooses stage 1's threshold (when stage 1 is trained here) on the
        gathered scores; both stages log the combined decision's metrics, and test
        writes the confusion matrix and stage 1's figures."""
        if outputs is None:
            return
        scores, stage2, y = outputs["scores"], outputs["stage2"], outputs["target"]
        rec = outputs["recording"]
        pain = (y > 0).long()
        if stage == "val" and self.train_detector:
            self.detector.threshold.fill_(
                choose_threshold(
                    scores,
                    pain,
                    self.hparams.threshold_rule,
                    self.hparams.threshold_q,
                    self.threshold,
                )
            )
        is_pain = scores >= self.threshold
        preds = combine_hierarchical(is_pain, stage2)
        values = decision_metrics(preds, y, self.classes, stage, rec)
        values[f"{stage}/threshold"] = torch.tensor(self.threshold)
        values[f"{stage}/stage1/accuracy"] = (is_pain.long() == pain).float().mean()
        auroc = binary_auroc(scores, pain)
        if auroc is not None:
            values[f"{stage}/stage1/auroc"] = torch.tensor(auroc)
        if pain.any():
            values[f"{stage}/stage2/accuracy"] = (
                (stage2[pain.bool()] == y[pain.bool()] - 1).float().mean()
            )
        self.log_dict(values)
        if stage == "test":
            save_confusion(self, preds, y, self.classes, stage)
            save_anomaly_figures(
                self, scores, pain, self.threshold, stage, "stage 1 (pain vs no pain)"
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        store_threshold(checkpoint, self)
