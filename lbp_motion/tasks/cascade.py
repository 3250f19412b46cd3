"""CascadeTask: PLAAN's protective-behaviour-to-pain cascade.

Stage 1 detects protective behaviour at every frame: a classifier with per-frame output
(``frame_logits``, e.g. the LSTM-DNN) gives ``p_t = P(protective)`` at each frame
(:meth:`CascadeTask.stage1_probability`, 0 at padded frames). Stage 2 estimates pain
(no pain / low / high) from the frames with ``p_t`` appended as one more input channel:
its input is (B, T, F + 1) (:meth:`CascadeTask.stage2_input`). Stage 1's probability is
detached: stage 2's loss never trains stage 1.

Stage 1 comes from a checkpoint (``stage1_checkpoint``: a ClassificationTask/JointTask
trained on the protective task, or an AnomalyTask with the ``loss`` scorer) or is
trained here, in the same fit, on the per-frame protective labels of the batch
(``frame_protective``, from ``EmoPainDataModule(frame_protective=true)``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lbp_motion.errors import ConfigError
from lbp_motion.models import ModelFactory
from lbp_motion.tasks.anomaly import AnomalyTask
from lbp_motion.tasks.base import tiny_emopain, tiny_lstm_dnn
from lbp_motion.tasks.hierarchical import load_stage
from lbp_motion.tasks.joint import JointTask


def _default_stage1(in_features: int, num_classes: int) -> nn.Module:
    from lbp_motion.models import LSTMDNNClassifier

    return LSTMDNNClassifier(in_features, num_classes)


def _default_stage2(in_features: int, num_classes: int) -> nn.Module:
    from lbp_motion.models import LSTMDNNClassifier

    return LSTMDNNClassifier(in_features, num_classes)


class CascadeTask(JointTask):
    """PLAAN's cascade: a per-frame protective-behaviour detector whose probability is
    an extra input channel of the pain estimator; three-class pain metrics.

    Everything else is :class:`~.joint.JointTask` on the stage-2 model (metrics,
    confusion matrix, joint exercise loss, predictions); with stage 1 trained here the
    loss adds ``stage1_weight`` x the per-frame protective cross-entropy over real
    frames (logged as ``<stage>/stage1_loss``).

    Args:
        model: the stage-2 pain estimator by class_path, built as
            ``model(num_features + 1, num_classes)`` (default: LSTM-DNN).
        stage1_checkpoint: a protective-behaviour checkpoint (None: train stage 1 here).
        stage1_model: stage 1 trained here, by class_path, ``model(num_features, 2)``,
            with ``frame_logits`` (default: LSTM-DNN).
        stage1_weight: weight of stage 1's loss when trained here.
        freeze_loaded: do not train a stage 1 loaded from a checkpoint.
        exercise_weight, class_weighted_loss, label_smoothing, data_spec, lr, ...: see
            :class:`~.joint.JointTask`.
    """

    def __init__(
        self,
        stage1_checkpoint: str | None = None,
        stage1_model: ModelFactory | None = None,
        stage1_weight: float = 1.0,
        freeze_loaded: bool = True,
        model: ModelFactory = _default_stage2,
        **kwargs: Any,
    ) -> None:
        self.stage1_factory = stage1_model
        super().__init__(model=model, **kwargs)

    @classmethod
    def conformance_config(cls) -> dict[str, Any]:
        """Tiny synthetic EmoPain pain data with per-frame protective labels; both stages
        small and trained here."""
        return cls.config_with(
            tiny_emopain("pain", frame_protective=True),
            model=tiny_lstm_dnn(),
            stage1_model=tiny_lstm_dnn(),
        )

    def configure_models(self) -> None:
        f = int(self.spec_value("num_features"))
        self.model = self.model_factory(f + 1, len(self.classes))
        self.exercise_head = nn.Linear(self.model_feature_dim(), len(self.aux_classes))
        path = self.hparams.stage1_checkpoint
        if path:
            task = load_stage(path)
            theirs = task.data_spec.get("num_features")
            if theirs is not None and int(theirs) != f:
                raise ConfigError(
                    f"CascadeTask: stage1_checkpoint {path} was trained on {theirs} features per frame; these data have {f}"
                )
            if isinstance(task, AnomalyTask):
                if task.hparams.scorer != "loss":
                    raise ConfigError(
                        f"CascadeTask: stage1_checkpoint {path} is a reconstruction AnomalyTask; it has no per-frame probability"
                    )
                stage1, column = task.detector.model, 1
            else:
                names = list(getattr(task, "classes", []))
                if "protective" not in names:
                    raise ConfigError(
                        f"CascadeTask: stage1_checkpoint {path} has classes {names}; expected a protective-behaviour model"
                    )
                stage1, column = task.model, names.index("protective")
        else:
            stage1, column = (self.stage1_factory or _default_stage1)(f, 2), 1
        if not hasattr(stage1, "frame_logits"):
            raise ConfigError(
                f"CascadeTask: stage 1 ({type(stage1).__name__}) has no frame_logits(); use e.g. LSTMDNNClassifier"
            )
        self.stage1 = stage1
        self.stage1_column = column
        self.train_stage1 = not (path and self.hparams.freeze_loaded)
        self.stage1.requires_grad_(self.train_stage1)

    def train(self, mode: bool = True):
        """A frozen stage 1 stays in eval mode (no dropout in the probability it gives)."""
        super().train(mode)
        if not getattr(self, "train_stage1", True):
            self.stage1.eval()
        return self

    # -- the cascade ---------------------------------------------------------------------
    def stage1_probability(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Per-frame protective probability (B, T) of stage 1, 0 at padded frames, detached."""
        with torch.no_grad():
            p = self.stage1.frame_logits(x, mask).softmax(dim=-1)[..., self.stage1_column]
        if mask is not None:
            p = p * mask.to(p.dtype)
        return p.detach()

    def stage2_input(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x`` (B, T, F) with stage 1's probability appended: (B, T, F + 1)."""
        return torch.cat([x, self.stage1_probability(x, mask).unsqueeze(-1).to(x.dtype)], dim=-1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.model(self.stage2_input(x, mask), mask)

    def main_and_features(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return super().main_and_features(self.stage2_input(x, mask), mask)

    def stage1_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Per-frame protective cross-entropy of stage 1, averaged over the real frames."""
        if "frame_protective" not in batch:
            raise ConfigError(
                "CascadeTask: training stage 1 needs per-frame protective labels; set "
                "data.init_args.frame_protective: true (EmoPainDataModule) or give stage1_checkpoint"
            )
        logits = self.stage1.frame_logits(batch["x"], batch["mask"])  # (B, T, 2)
        b, t, c = logits.shape
        ce = nn.functional.cross_entropy(
            logits.reshape(b * t, c),
            batch["frame_protective"].reshape(-1).clamp(0, 1),
            reduction="none",
        ).reshape(b, t)
        w = batch["mask"].to(ce.dtype)
        return (ce * w).sum() / w.sum().clamp_min(1.0)

    def compute_loss(self, batch: dict[str, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        logits, loss = super().compute_loss(batch, stage)
        if (
            self.train_stage1
            and self.hparams.stage1_weight > 0
            and (stage == "train" or "frame_protective" in batch)
        ):
            s1 = self.stage1_loss(batch)
            self.log(
                f"{stage}/stage1_loss", s1, on_step=False, on_epoch=True, batch_size=len(batch["y"])
            )
            loss = loss + self.hparams.stage1_weight * s1
        return logits, loss
