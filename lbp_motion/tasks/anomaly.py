"""AnomalyTask: PLAAN's anomaly detection, pain (or protective behaviour) as the anomaly.

Two scorers (``scorer`` in the config); higher scores are more anomalous:

- ``loss``: a classifier with per-frame output (``frame_logits``, e.g.
  :class:`~lbp_motion.models.LSTMDNNClassifier`) trained on the binary task (normal vs
  anomalous) at every real frame, jointly with the exercise type; the score of a
  segment is the mean over its REAL frames of the per-frame loss against the normal
  class, ``-log p(normal)`` (:func:`frame_normal_nll`), so no label is needed to score.
- ``reconstruction``: an LSTM encoder-decoder
  (:class:`~lbp_motion.models.LSTMAutoencoder`) trained with the MSE reconstruction
  loss (plus, with ``exercise_weight > 0``, the exercise cross-entropy on its latent
  vector), on all training segments or on the normal ones only (``train_on``); the
  score is the segment's reconstruction MSE over its real frames
  (:func:`reconstruction_error`).

A segment is predicted anomalous when ``score >= threshold``. The threshold is chosen
at the end of every validation epoch on the validation scores by ``threshold_rule``
(:mod:`lbp_motion.evaluation.thresholds`: ``percentile`` of the normal scores, ``f1`` or
``youden``), kept in the checkpoint (a buffer of the detector, and
``checkpoint["lbp_motion"]["threshold"]``) and used as is by test and predict.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from lbp_motion.datasets.emopain.format import EXERCISES
from lbp_motion.errors import ConfigError
from lbp_motion.evaluation.decisions import (
    decision_metrics,
    save_confusion,
    save_figure,
    save_scores,
)
from lbp_motion.evaluation.figures import roc_figure, score_boxplot_figure
from lbp_motion.evaluation.outputs import StepOutput
from lbp_motion.evaluation.thresholds import RULES, select_threshold
from lbp_motion.models import ModelFactory
from lbp_motion.tasks.base import BaseTask, tiny_emopain, tiny_lstm_dnn

SCORERS = ("loss", "reconstruction")
#: EmoPain's exercise types: the default width of the joint exercise head
NUM_EXERCISES = len(EXERCISES)


def _real(mask: Tensor | None, like: Tensor) -> Tensor:
    """(B, T) float weights of the real frames; a sample without any counts all frames."""
    if mask is None:
        return torch.ones(like.shape[:2], dtype=like.dtype, device=like.device)
    m = mask.to(torch.bool)
    m = m | ~m.any(dim=1, keepdim=True)
    return m.to(like.dtype)


def frame_normal_nll(frame_logits: Tensor, mask: Tensor | None, normal_index: int = 0) -> Tensor:
    """Anomaly score of the ``loss`` scorer: the mean over the real frames of ``mask``
    (B, T) of ``-log softmax(frame_logits)[normal_index]``; ``frame_logits`` (B, T, C).
    Returns (B,)."""
    nll = -frame_logits.log_softmax(dim=-1)[..., normal_index]
    w = _real(mask, nll)
    return (nll * w).sum(dim=1) / w.sum(dim=1)


def reconstruction_error(reconstruction: Tensor, x: Tensor, mask: Tensor | None) -> Tensor:
    """Anomaly score of the ``reconstruction`` scorer: squared error averaged over the
    features and the real frames; ``reconstruction`` and ``x`` (B, T, F). Returns (B,)."""
    err = (reconstruction - x).pow(2).mean(dim=-1)
    w = _real(mask, err)
    return (err * w).sum(dim=1) / w.sum(dim=1)


def decision_probs(scores: Tensor, threshold: float | Tensor) -> Tensor:
    """(B, 2) pseudo-probabilities ``[normal, anomalous]`` with
    ``p_anomalous = sigmoid(score - threshold)``, nudged so that the argmax is exactly
    the decision ``score >= threshold`` (for prediction files)."""
    p = torch.sigmoid(scores - threshold)
    anomalous = scores >= threshold
    p = torch.where(anomalous, p.clamp_min(0.5 + 1e-6), p.clamp_max(0.5 - 1e-6))
    return torch.stack([1 - p, p], dim=-1)


class AnomalyDetector(nn.Module):
    """The scoring network, its exercise head and its threshold (a plain module, so that
    the hierarchical task can hold one).

    Args:
        scorer: ``loss`` or ``reconstruction``.
        model: for ``loss`` a classifier with 2 outputs and ``frame_logits``/``features``;
            for ``reconstruction`` a model with ``reconstruct`` whose head predicts the
            exercise type.
        num_exercises: outputs of the exercise head (``loss`` scorer).
    """

    def __init__(self, scorer: str, model: nn.Module, num_exercises: int = NUM_EXERCISES) -> None:
        super().__init__()
        if scorer not in SCORERS:
            raise ConfigError(
                f"AnomalyTask: scorer={scorer!r}; expected 'loss' or 'reconstruction'"
            )
        self.scorer = scorer
        self.model = model
        needed = "frame_logits" if scorer == "loss" else "reconstruct"
        if not hasattr(model, needed):
            raise ConfigError(
                f"AnomalyTask: scorer={scorer!r} needs a model with {needed}() "
                f"({'e.g. LSTMDNNClassifier' if scorer == 'loss' else 'e.g. LSTMAutoencoder'}); "
                f"{type(model).__name__} has none"
            )
        self.exercise_head = (
            nn.Linear(int(model.feature_dim), num_exercises) if scorer == "loss" else None
        )
        self.register_buffer("threshold", torch.tensor(0.0))

    def scores(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Anomaly score per segment (B,); higher = more anomalous."""
        if self.scorer == "loss":
            return frame_normal_nll(self.model.frame_logits(x, mask), mask, 0)
        return reconstruction_error(self.model.reconstruct(x, mask), x, mask)

    def is_anomalous(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(scores, scores >= threshold)``, both (B,)."""
        s = self.scores(x, mask)
        return s, s >= self.threshold

    def losses(
        self, batch: dict[str, Tensor], anomalous: Tensor, exercise_weight: float, normal_only: bool
    ) -> dict[str, Tensor]:
        """Training loss on ``batch`` with binary labels ``anomalous`` (B,) long:
        ``main_loss`` (per-frame binary CE over real frames, or reconstruction MSE),
        ``exercise_loss``, ``loss`` = main + exercise_weight x exercise, and ``scores``.
        ``normal_only``: only the normal samples count (reconstruction)."""
        x, mask = batch["x"], batch["mask"]
        weight = (
            (anomalous == 0).to(x.dtype)
            if normal_only
            else torch.ones(len(x), dtype=x.dtype, device=x.device)
        )
        denom = weight.sum().clamp_min(1.0)
        if self.scorer == "loss":
            frame_logits = self.model.frame_logits(x, mask)  # (B, T, 2)
            b, t, c = frame_logits.shape
            frame_ce = nn.functional.cross_entropy(
                frame_logits.reshape(b * t, c), anomalous.repeat_interleave(t), reduction="none"
            ).reshape(b, t)
            w = _real(mask, frame_ce)
            main = (frame_ce * w).sum(dim=1) / w.sum(dim=1)
            scores = frame_normal_nll(frame_logits.detach(), mask, 0)
            exercise_logits = (
                self.exercise_head(self.model.features(x, mask)) if exercise_weight > 0 else None
            )
        else:
            recon = self.model.reconstruct(x, mask)
            main = reconstruction_error(recon, x, mask)
            scores = main.detach()
            exercise_logits = self.model(x, mask) if exercise_weight > 0 else None
        main_loss = (main * weight).sum() / denom
        if exercise_logits is not None:
            if "aux" not in batch:
                raise ConfigError(
                    "AnomalyTask: exercise_weight > 0 but the batch has no 'aux' (exercise labels); "
                    "use EmoPainDataModule or set exercise_weight: 0"
                )
            ce = nn.functional.cross_entropy(exercise_logits, batch["aux"], reduction="none")
            exercise_loss = (ce * weight).sum() / denom
        else:
            exercise_loss = torch.zeros((), device=x.device)
        return {
            "main_loss": main_loss,
            "exercise_loss": exercise_loss,
            "loss": main_loss + exercise_weight * exercise_loss,
            "scores": scores,
        }


class AnomalyTask(BaseTask):
    """PLAAN's anomaly detection: score segments (per-frame loss against the normal
    class, or reconstruction error), threshold the scores (chosen on validation data).

    Labels: ``normal_class`` of the data's classes is normal, every other class is the
    anomaly (pain task: no_pain normal, low and high pain; protective task:
    non_protective normal, protective). The task's two classes are
    ``[<normal class>, anomaly_name]``; metrics (``<stage>/accuracy``, ``f1/<class>``,
    ``f1_macro``, ``mcc``, ...) are of the thresholded decision, plus ``<stage>/auroc``
    of the raw scores and ``<stage>/threshold``. Testing writes ``roc_test.png``,
    ``scores_test.png`` (box plots with the threshold), ``confusion_test.png``/``.csv``
    and ``scores_test.csv`` into the run directory and logs the figures to W&B.

    Args:
        scorer: ``loss`` or ``reconstruction`` (module docstring).
        model: the network by class_path, called ``model(num_features, num_outputs)``;
            ``loss``: 2 outputs, needs ``frame_logits`` (default: LSTM-DNN);
            ``reconstruction``: outputs = exercise types, needs ``reconstruct``
            (default: ``LSTMAutoencoder``).
        normal_class: index of the normal class in ``data_spec["classes"]``.
        anomaly_name: name of the anomalous class; default: the other class of a binary
            task, else ``anomalous``.
        exercise_weight: weight of the joint exercise-type cross-entropy (0: off).
        train_on: ``all`` segments or ``normal`` ones only (``reconstruction`` scorer).
        threshold_rule: ``percentile``, ``f1`` or ``youden``.
        threshold_q: the percentile of ``percentile`` (0-100).
        data_spec, lr, weight_decay, lr_decay, optimizer, lr_scheduler: see
            :class:`~lbp_motion.tasks.base.BaseTask`.
    """

    def __init__(
        self,
        scorer: Literal["loss", "reconstruction"] = "loss",
        model: ModelFactory | None = None,
        normal_class: int = 0,
        anomaly_name: str | None = None,
        exercise_weight: float = 1.0,
        train_on: Literal["all", "normal"] = "all",
        threshold_rule: Literal["percentile", "f1", "youden"] = "f1",
        threshold_q: float = 95.0,
        **kwargs: Any,
    ) -> None:
        if scorer not in SCORERS:
            raise ConfigError(
                f"AnomalyTask: scorer={scorer!r}; expected 'loss' or 'reconstruction'"
            )
        if threshold_rule not in RULES:
            raise ConfigError(
                f"AnomalyTask: threshold_rule={threshold_rule!r}; expected one of {', '.join(RULES)}"
            )
        if train_on not in ("all", "normal"):
            raise ConfigError(f"AnomalyTask: train_on={train_on!r}; expected 'all' or 'normal'")
        if scorer == "loss" and train_on == "normal":
            raise ConfigError(
                "AnomalyTask: scorer='loss' learns normal vs anomalous and needs both; "
                "train_on='normal' is for scorer='reconstruction'"
            )
        if exercise_weight < 0:
            raise ConfigError(f"AnomalyTask: exercise_weight={exercise_weight}; expected >= 0")
        self.model_factory = model
        super().__init__(**kwargs)

    @classmethod
    def conformance_config(cls) -> dict[str, Any]:
        """Tiny synthetic EmoPain data (protective task), a small LSTM-DNN, loss scorer."""
        return cls.config_with(tiny_emopain("protective"), scorer="loss", model=tiny_lstm_dnn())

    # -- configuration ---------------------------------------------------------------
    @property
    def data_classes(self) -> list[str]:
        return list(self.spec_value("classes"))

    @property
    def classes(self) -> list[str]:
        """``[normal, anomalous]`` names."""
        data = self.data_classes
        normal = data[self.hparams.normal_class]
        if self.hparams.anomaly_name:
            return [normal, self.hparams.anomaly_name]
        others = [c for c in data if c != normal]
        return [normal, others[0] if len(others) == 1 else "anomalous"]

    @property
    def num_exercises(self) -> int:
        return len(self.data_spec.get("aux_classes", ())) or NUM_EXERCISES

    def configure_models(self) -> None:
        data = self.data_classes
        if not 0 <= self.hparams.normal_class < len(data):
            raise ConfigError(
                f"AnomalyTask: normal_class={self.hparams.normal_class}; expected an index into {data}"
            )
        f = int(self.spec_value("num_features"))
        if self.hparams.scorer == "loss":
            factory = self.model_factory or _default_loss_model
            model = factory(f, 2)
        else:
            factory = self.model_factory or _default_autoencoder
            model = factory(f, self.num_exercises)
        self.detector = AnomalyDetector(self.hparams.scorer, model, self.num_exercises)

    def binary_labels(self, y: Tensor) -> Tensor:
        """(B,) long: 0 for the normal class, 1 for every other class."""
        return (y != self.hparams.normal_class).long()

    @property
    def threshold(self) -> float:
        return float(self.detector.threshold)

    # -- steps -------------------------------------------------------------------------
    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Anomaly scores (B,)."""
        return self.detector.scores(x, mask)

    def step(self, batch: dict[str, Tensor], stage: str) -> StepOutput:
        out = self.detector.losses(
            batch,
            self.binary_labels(batch["y"]),
            self.hparams.exercise_weight,
            normal_only=self.hparams.train_on == "normal",
        )
        n = len(batch["y"])
        self.log(
            f"{stage}/loss",
            out["loss"],
            on_step=False,
            on_epoch=True,
            batch_size=n,
            prog_bar=stage == "train",
        )
        self.log(f"{stage}/main_loss", out["main_loss"], on_step=False, on_epoch=True, batch_size=n)
        if self.hparams.exercise_weight > 0:
            self.log(
                f"{stage}/exercise_loss",
                out["exercise_loss"],
                on_step=False,
                on_epoch=True,
                batch_size=n,
            )
        return StepOutput(
            loss=out["loss"],
            target=self.binary_labels(batch["y"]),
            recording=batch["recording"],
            scores=out["scores"],
        )

    def predict_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor]:
        scores = self.detector.scores(batch["x"], batch["mask"])
        out = {
            "recording": batch["recording"],
            "start": batch["start"],
            "probs": decision_probs(scores, self.detector.threshold),
            "score": scores,
        }
        if "y" in batch:
            out["y"] = self.binary_labels(batch["y"])
        return out

    # -- epoch ends: threshold, metrics, figures ---------------------------------------
    def update_threshold(self, scores: Tensor, labels: Tensor) -> None:
        """Choose the threshold on (validation) ``scores`` and binary ``labels`` by the
        configured rule; keep the current one (with a warning) when the rule cannot be
        applied, e.g. ``f1`` on validation data of one class."""
        self.detector.threshold.fill_(
            choose_threshold(
                scores,
                labels,
                self.hparams.threshold_rule,
                self.hparams.threshold_q,
                self.threshold,
            )
        )

    def _log_decisions(self, stage: str, scores: Tensor, labels: Tensor, rec: Tensor) -> Tensor:
        preds = (scores >= self.threshold).long()
        values = decision_metrics(preds, labels, self.classes, stage, rec)
        values[f"{stage}/threshold"] = torch.tensor(self.threshold)
        auroc = binary_auroc(scores, labels)
        if auroc is not None:
            values[f"{stage}/auroc"] = torch.tensor(auroc)
        self.log_dict(values)
        return preds

    def evaluate(self, stage: str, outputs: dict[str, Tensor] | None) -> None:
        """Validation: choose the threshold on the gathered scores, then log the
        decision's metrics; test: the metrics, figures, confusion matrix and scores."""
        if outputs is None:
            return
        scores, labels, rec = outputs["scores"], outputs["target"], outputs["recording"]
        if stage == "val":
            self.update_threshold(scores, labels)
        preds = self._log_decisions(stage, scores, labels, rec)
        if stage == "test":
            save_anomaly_figures(self, scores, labels, self.threshold, "test", self.hparams.scorer)
            save_confusion(self, preds, labels, self.classes, "test")
            save_scores(self, "test", rec, scores, labels, preds)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        store_threshold(checkpoint, self, scorer=self.hparams.scorer)


# -- helpers shared with the hierarchical task --------------------------------------------
def store_threshold(checkpoint: dict[str, Any], task, **extra: Any) -> None:
    """Record the task's decision threshold and how it was chosen in
    ``checkpoint["lbp_motion"]["threshold"]`` (the value itself travels as a buffer)."""
    checkpoint.setdefault("lbp_motion", {})["threshold"] = {
        "value": task.threshold,
        "rule": task.hparams.threshold_rule,
        "q": task.hparams.threshold_q,
        **extra,
    }


def choose_threshold(scores: Tensor, labels: Tensor, rule: str, q: float, current: float) -> float:
    """:func:`~.thresholds.select_threshold`, or ``current`` (with a warning) when the
    rule cannot be applied to these scores (e.g. one class only)."""
    try:
        return float(select_threshold(scores.numpy(), labels.numpy(), rule, q))
    except ConfigError as err:
        rank_zero_warn(f"anomaly threshold: keeping {current:.4g} ({err})")
        return current


def binary_auroc(scores: Tensor, labels: Tensor) -> float | None:
    """ROC AUC of ``scores`` for ``labels`` 1; None with one class only."""
    if labels.unique().numel() < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels.numpy(), scores.numpy()))


def save_anomaly_figures(
    task, scores: Tensor, labels: Tensor, threshold: float, stage: str, name: str
) -> None:
    """``roc_<stage>.png`` (when both classes occur) and ``scores_<stage>.png`` in the run
    directory, also logged to W&B."""
    if labels.unique().numel() == 2:
        fig = roc_figure({name: (scores.numpy(), labels.numpy())}, title=f"{stage} ROC")
        save_figure(task, fig, f"roc_{stage}.png", f"{stage}/roc")
    else:
        rank_zero_warn(f"{stage}: one class only; no ROC curve")
    fig = score_boxplot_figure(
        scores.numpy(), labels.numpy(), threshold, title=f"{stage} anomaly scores"
    )
    save_figure(task, fig, f"scores_{stage}.png", f"{stage}/anomaly_scores")


def _default_loss_model(in_features: int, num_classes: int) -> nn.Module:
    from lbp_motion.models import LSTMDNNClassifier

    return LSTMDNNClassifier(in_features, num_classes)


def _default_autoencoder(in_features: int, num_classes: int) -> nn.Module:
    from lbp_motion.models import LSTMAutoencoder

    return LSTMAutoencoder(in_features, num_classes)
