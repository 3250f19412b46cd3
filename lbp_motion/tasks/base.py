"""BaseTask: a LightningModule holding the model, loss, optimiser and metrics."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from jsonargparse.typing import NonNegativeFloat, PositiveFloat
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from lbp_motion._version import __version__
from lbp_motion.errors import ConfigError, LbpError
from lbp_motion.evaluation.outputs import EpochOutputs, StepOutput


class NonFiniteLossError(LbpError):
    """Training produced a NaN or infinite loss; the run stops instead of reporting NaN."""


# -- the pieces of the conformance configs (tests/test_conformance.py) -----------------------
def tiny_tug(**extra: Any) -> dict[str, Any]:
    """The tiny synthetic TUG data of the conformance configs (``extra``: more init_args)."""
    return {
        "class_path": "lbp_motion.datamodules.tug.TUGDataModule",
        "init_args": {
            "synthetic": {"num_subjects": 9, "recordings_per_subject": 1},
            "stride": 15,
            **extra,
        },
    }


def tiny_emopain(task: str, **extra: Any) -> dict[str, Any]:
    """The tiny synthetic EmoPain data (``task``: pain or protective) of the conformance
    configs (``extra``: more init_args)."""
    return {
        "class_path": "lbp_motion.datamodules.emopain.EmoPainDataModule",
        "init_args": {
            "task": task,
            "features": "coords",
            "batch_size": 32,
            "synthetic": {
                "num_train_patients": 2, "num_train_controls": 1,
                "num_val_patients": 1, "num_val_controls": 1, "frames_per_file": 900,
            },
            **extra,
        },
    }  # fmt: skip


def tiny_lstm_dnn() -> dict[str, Any]:
    """A small LSTM-DNN as a ``model`` argument: the network of the EmoPain conformance configs."""
    return {
        "class_path": "lbp_motion.models.LSTMDNNClassifier",
        "init_args": {"hidden_sizes": [16], "dense_sizes": [16]},
    }


class BaseTask(pl.LightningModule):
    """Base class of every lbp_motion task (torchgeo style).

    ``__init__`` saves the hyperparameters, then calls :meth:`configure_models`,
    :meth:`configure_losses` and :meth:`configure_metrics`, which subclasses implement.

    Steps and evaluation are shared (anomalib's post-processor/evaluator split): a
    subclass implements :meth:`step` ``(batch, stage) ->``
    :class:`~lbp_motion.evaluation.outputs.StepOutput` and :meth:`evaluate`
    ``(stage, outputs)``. ``training_step`` returns the step's loss; validation and test
    steps keep their outputs in ``self.epoch_outputs``, which at the epoch end gathers
    them from every process and passes them to :meth:`evaluate`, so thresholds and
    metrics are computed on the same data on every device. A task may still override
    Lightning's step methods itself (docs/writing-a-task.md).

    Args:
        data_spec: what the data look like (``num_features``, ``classes``, ...); ``lbp``
            fills it from the DataModule's ``spec``, so configs never repeat it.
        lr: learning rate of the default optimiser, AdamW (SPEC: 5e-4).
        weight_decay: AdamW weight decay (SPEC: 0.01).
        lr_decay: the default schedule multiplies the learning rate by this every epoch
            (SPEC: 0.99); 1 keeps it constant.
        optimizer: any optimiser by class_path, replacing the default (its ``lr`` etc.
            come from its own init_args).
        lr_scheduler: any scheduler by class_path, replacing the default; stepped per
            epoch, or on ``val/loss`` for ReduceLROnPlateau.
    """

    def __init__(
        self,
        data_spec: dict[str, Any] | None = None,
        lr: PositiveFloat = 5e-4,
        weight_decay: NonNegativeFloat = 0.01,
        lr_decay: PositiveFloat = 0.99,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        # plain floats in the hyperparameters: checkpoints hold plain data only (lbp_motion.trust)
        lr, weight_decay, lr_decay = float(lr), float(weight_decay), float(lr_decay)
        self.save_hyperparameters()
        self.data_spec: dict[str, Any] = dict(data_spec or {})
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.epoch_outputs = EpochOutputs(("val", "test"))
        self.configure_models()
        self.configure_losses()
        self.configure_metrics()

    # -- what subclasses provide -----------------------------------------------------
    def configure_models(self) -> None:
        """Build the networks (``self.model`` etc.) from hyperparameters and ``data_spec``."""

    def configure_losses(self) -> None:
        """Build the loss functions."""

    def configure_metrics(self) -> None:
        """Build the torchmetrics objects."""

    def step(self, batch: dict[str, torch.Tensor], stage: str) -> StepOutput:
        """The loss and per-sample outputs of ``batch`` in ``stage`` (``train``, ``val``
        or ``test``); log the loss terms here. Tasks that use the shared steps implement it."""
        raise NotImplementedError(
            f"{type(self).__name__}: implement step(batch, stage) -> StepOutput, or override "
            "Lightning's training_step / validation_step / test_step"
        )

    def evaluate(self, stage: str, outputs: dict[str, torch.Tensor] | None) -> None:
        """Log the metrics of ``stage``'s epoch (and, for test, write its files) from
        ``outputs``: the per-sample tensors of every step (:meth:`StepOutput.per_sample`
        names), gathered from every process; None when no step collected any (the
        training stage, whose metrics a task accumulates itself)."""

    @classmethod
    def conformance_config(cls) -> dict[str, Any]:
        """A small ``lbp`` config (``model`` and ``data`` sections) on which the
        conformance test runs this task through fit, test and predict. Tasks that need
        other data or arguments override it, usually as ``cls.config_with(data, ...)``."""
        return cls.config_with(tiny_tug())

    @classmethod
    def config_with(cls, data: dict[str, Any], **init_args: Any) -> dict[str, Any]:
        """``model`` and ``data`` sections of a config: this task with ``init_args`` (if
        any) on the DataModule ``data`` (a ``class_path`` dict)."""
        model: dict[str, Any] = {"class_path": f"{cls.__module__}.{cls.__qualname__}"}
        if init_args:
            model["init_args"] = init_args
        return {"model": model, "data": data}

    # -- shared machinery --------------------------------------------------------------
    def spec_value(self, key: str) -> Any:
        """``data_spec[key]``, with an error that says how to provide it."""
        if key not in self.data_spec:
            raise ConfigError(
                f"{type(self).__name__}: data_spec has no {key!r}; run through `lbp`, which fills "
                f"data_spec from the DataModule, or pass data_spec={{'{key}': ...}}"
            )
        return self.data_spec[key]

    def configure_optimizers(self):
        if self.optimizer_factory is not None:
            optimizer = self.optimizer_factory(self.parameters())
        else:
            optimizer = torch.optim.AdamW(
                self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
            )
        if self.scheduler_factory is not None:
            scheduler = self.scheduler_factory(optimizer)
        elif self.hparams.lr_decay != 1.0:
            scheduler = torch.optim.lr_scheduler.ExponentialLR(
                optimizer, gamma=self.hparams.lr_decay
            )
        else:
            return optimizer
        config = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/loss"
        return {"optimizer": optimizer, "lr_scheduler": config}

    # -- the shared steps -------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> Any:
        loss = self.step(batch, "train").loss
        return loss if loss.requires_grad else None  # nothing to train: skip the step

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.epoch_outputs.add("val", self.step(batch, "val"))

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.epoch_outputs.add("test", self.step(batch, "test"))

    def on_train_epoch_end(self) -> None:
        self.evaluate("train", None)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            # Lightning's sanity check is not an epoch: nothing is evaluated or chosen
            self.epoch_outputs.reset("val")
            self.reset_metrics("val")
            return
        self.evaluate("val", self.epoch_outputs.gather("val", self))

    def on_test_epoch_end(self) -> None:
        self.evaluate("test", self.epoch_outputs.gather("test", self))

    def reset_metrics(self, stage: str) -> None:
        """Forget what ``stage``'s metric objects accumulated (after the sanity check)."""

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Stop at the first non-finite training loss, with the epoch, batch and lr."""
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all()):
            lrs = (
                [g["lr"] for opt in self.trainer.optimizers for g in opt.param_groups]
                if self._trainer
                else []
            )
            raise NonFiniteLossError(
                f"training loss is {loss.detach().float().mean().item()} at epoch {self.current_epoch}, "
                f"batch {batch_idx} (learning rate {lrs[0] if lrs else self.hparams.get('lr')}): training "
                "diverged; lower model.lr, or check the data for non-finite values"
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Make the checkpoint describe itself: data (classes, layout, normalisation,
        window, stride, fps), task class and package version."""
        data = dict(self.data_spec)
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "describe"):
            data.update(dm.describe())
        checkpoint.setdefault("lbp_motion", {}).update(
            version=__version__,
            task=f"{type(self).__module__}.{type(self).__qualname__}",
            data=data,
        )
        checkpoint.setdefault("hyper_parameters", {})["data_spec"] = self.data_spec
