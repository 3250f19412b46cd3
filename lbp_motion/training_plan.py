"""The training plan: the one hook through which FedAvg, differential privacy and a
Flower site choose the training loader and wrap each training step, for any DataModule.

A DataModule returns its ordinary training DataLoader and knows nothing of federation
or privacy. The Trainer's strategy, a :class:`TrainingPlanStrategy` (``FedAvgStrategy``
is one), passes that loader through the *stages* of the plan, in order, when Lightning
hands it each training loader (``Strategy.process_dataloader``), and passes each
training step through the stages' step wrappers, the first stage outermost
(``Strategy.training_step``). These two methods are the only place where the plan is
applied; nothing is assigned to the DataModule or the LightningModule.

A stage is the strategy or a callback that subclasses :class:`TrainingStage`:

* order 100 (:data:`FEDERATION`), ``FedAvgStrategy``: the loader becomes per-client
  rounds (``FederatedLoader``); each step switches to the batch's client (FedProx adds
  its term to the loss);
* order 100, a Flower site's round (``federated/flower/local.py``): the loader becomes
  the site's batches of the round;
* order 200 (:data:`PRIVACY`), ``DifferentialPrivacy``: the loader becomes Poisson
  batches (each client's own in a federated run); an empty batch's step gives no loss
  (the optimiser adds noise only).

What a stage may ask of the DataModule is the *training-data protocol*, three optional
methods, read by :class:`TrainData` only:

* ``real_train_dataset()``: the training samples before balancing or augmentation
  (default: the dataset of the DataModule's training DataLoader);
* ``train_subject_info()``: a dict aligned with those samples: ``subject`` (N,) (needed
  by FedAvg's partitions and by privacy unit ``subject``), optional ``label`` (N,)
  (needed by the ``dirichlet`` partition) and optional ``site`` (N,) or None (needed by
  the ``site`` partition);
* ``balance_client(dataset)``: balance one client's part like the training split
  (default: unchanged).

A feature that needs a missing method stops the fit with one line naming the
DataModule's class. docs/architecture.md, "Choosing the training loader", has the story.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.trainer.states import TrainerFn

from lbp_motion.errors import ConfigError

#: plan order of the stages that choose whose data a step sees (FedAvg, a Flower site)
FEDERATION = 100
#: plan order of differential privacy: it samples from what the federation stage chose
PRIVACY = 200

GUIDE = "docs/architecture.md, 'Choosing the training loader'"


class TrainData:
    """The training samples as the stages see them, read through the DataModule's
    optional training-data protocol (see the module docstring) when first asked.

    Args:
        datamodule: the Trainer's DataModule (None when the loader was given directly).
        loader: the training loader the DataModule returned.
    """

    def __init__(self, datamodule: Any, loader: Any = None) -> None:
        self.datamodule = datamodule
        self.loader = loader
        self.owner = type(datamodule).__name__ if datamodule is not None else "the training loader"

    @functools.cached_property
    def dataset(self) -> torch.utils.data.Dataset:
        """The real training samples (before balancing or augmentation)."""
        real = _optional_call(self.datamodule, "real_train_dataset")
        if real is not None:
            return real
        loader = self.loader if self.loader is not None else self.datamodule.train_dataloader()
        dataset = getattr(loader, "dataset", None)
        if dataset is None or not hasattr(dataset, "__len__"):
            raise ConfigError(
                f"{self.owner}: the training loader is not a DataLoader over a map-style dataset and the DataModule "
                f"offers no real_train_dataset(); see {GUIDE}"
            )
        return dataset

    @functools.cached_property
    def info(self) -> dict[str, Any] | None:
        """``train_subject_info()`` of the DataModule, or None when it has none."""
        return _optional_call(self.datamodule, "train_subject_info")

    def require_info(self, who: str, needs: str) -> dict[str, Any]:
        """:attr:`info`, or a one-line :class:`ConfigError` naming the DataModule's class."""
        if self.info is None:
            raise ConfigError(
                f"{who}: {needs}, and {self.owner} does not say which subject each training sample belongs to; "
                f"give it a train_subject_info() method (see {GUIDE})"
            )
        return self.info

    @functools.cached_property
    def subjects(self) -> list[str] | None:
        """The subject (as a string) of each sample of :attr:`dataset`, or None."""
        return None if self.info is None else [str(s) for s in self.info["subject"]]

    def subjects_of(self, dataset: Any) -> list[str] | None:
        """The subject of each sample of ``dataset`` when it is :attr:`dataset` or a
        ``Subset`` of it (e.g. a client's part); else None."""
        if self.subjects is None:
            return None
        if dataset is self.dataset:
            return self.subjects
        if isinstance(dataset, torch.utils.data.Subset) and dataset.dataset is self.dataset:
            return [self.subjects[i] for i in dataset.indices]
        return None

    @property
    def batch_size(self) -> int:
        """The batch size of the DataModule's training loader (or its ``batch_size``)."""
        size = getattr(self.loader, "batch_size", None) or getattr(
            self.datamodule, "batch_size", None
        )
        if not size:
            raise ConfigError(f"{self.owner}: the training loader has no batch_size; see {GUIDE}")
        return int(size)

    def balance(self, dataset: torch.utils.data.Dataset) -> torch.utils.data.Dataset:
        """One client's part balanced like the training split (``balance_client``), or unchanged."""
        balance = getattr(self.datamodule, "balance_client", None)
        return balance(dataset) if callable(balance) else dataset


def _optional_call(obj: Any, name: str) -> Any:
    """``obj.name()``, or None when ``obj`` has no such method or it is not implemented."""
    method = getattr(obj, name, None)
    if not callable(method):
        return None
    try:
        return method()
    except NotImplementedError:
        return None


class TrainingStage:
    """Base class of a strategy or callback that takes part in the training plan.

    Override one or both methods; :attr:`plan_order` places the stage in the plan
    (:data:`FEDERATION`, then :data:`PRIVACY`; stages of equal order keep the order of
    the strategy, then the Trainer's callbacks).
    """

    plan_order: int = 0

    def transform_train_loader(
        self, loader: Any, data: TrainData, trainer: pl.Trainer | None
    ) -> Any:
        """The training loader this stage makes of ``loader`` (what the previous stage,
        or the DataModule, gave). Called for every training loader Lightning requests
        (each epoch when it reloads them)."""
        return loader

    def around_training_step(self, batch: Any, step: Callable[[], Any]) -> Any:
        """One training step: call ``step()`` (the next stages and the task's
        ``training_step``) or return what Lightning should get instead (None: no loss)."""
        return step()


class TrainingPlan:
    """The stages of a fit, in plan order, and how they are applied."""

    def __init__(self, stages: Iterable[TrainingStage]) -> None:
        self.stages = sorted(stages, key=lambda stage: stage.plan_order)

    @classmethod
    def of(cls, trainer: pl.Trainer) -> TrainingPlan:
        """The plan of a Trainer: its strategy and callbacks that are stages."""
        return cls(
            s for s in (trainer.strategy, *trainer.callbacks) if isinstance(s, TrainingStage)
        )

    def train_loader(self, loader: Any, datamodule: Any, trainer: pl.Trainer | None = None) -> Any:
        """``loader`` (the DataModule's training loader) passed through every stage."""
        if not self.stages:
            return loader
        data = TrainData(datamodule, loader)
        for stage in self.stages:
            loader = stage.transform_train_loader(loader, data, trainer)
        return loader

    def training_step(self, batch: Any, step: Callable[[], Any]) -> Any:
        """Run ``step`` wrapped by every stage, the first stage outermost."""
        for stage in reversed(self.stages):
            step = functools.partial(stage.around_training_step, batch, step)
        return step()


def planned_train_loader(
    datamodule: Any, stages: Sequence[TrainingStage], trainer: pl.Trainer | None = None
) -> Any:
    """The training loader that ``stages`` make of ``datamodule``'s, as a fit would get
    it (for tests and for looking at the batches outside a Trainer)."""
    return TrainingPlan(stages).train_loader(datamodule.train_dataloader(), datamodule, trainer)


class TrainingPlanStrategy(SingleDeviceStrategy):
    """A single-device strategy that applies the training plan: the one place where
    the stages change the training loader and wrap the training step.

    ``lbp fit`` uses it when a callback is a stage (e.g. ``DifferentialPrivacy``) and
    ``trainer.strategy`` is ``auto`` on one device; elsewhere pass
    ``strategy=TrainingPlanStrategy()`` to the Trainer.

    Args:
        device: ``None`` uses the Trainer's accelerator (GPU when given one).
    """

    def __init__(self, device: str | None = None, **kwargs: Any) -> None:
        super().__init__(device=torch.device(device) if device else "cpu", **kwargs)
        self._device_given = device is not None

    def setup_environment(self) -> None:
        # the accelerator sets its device up here, before setup(): follow it now
        if not self._device_given and self.lightning_module is not None:
            self._root_device = accelerator_device(self.lightning_module.trainer)
        super().setup_environment()

    def setup(self, trainer: pl.Trainer) -> None:
        if not self._device_given:  # follow the Trainer's accelerator
            self._root_device = accelerator_device(trainer)
        super().setup(trainer)

    def process_dataloader(self, dataloader: object) -> object:
        dataloader = super().process_dataloader(dataloader)
        trainer = self.lightning_module.trainer
        if trainer.state.fn == TrainerFn.FITTING and trainer.training:
            dataloader = TrainingPlan.of(trainer).train_loader(
                dataloader, trainer.datamodule, trainer
            )
        return dataloader

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        batch = args[0] if args else kwargs.get("batch")
        step = functools.partial(super().training_step, *args, **kwargs)
        return TrainingPlan.of(self.lightning_module.trainer).training_step(batch, step)


def plan_problem(trainer: pl.Trainer) -> str | None:
    """Why a stage would be bypassed by the Trainer's strategy (a phrase for a stage's
    one-line error), or None when the strategy applies the plan."""
    if isinstance(trainer.strategy, TrainingPlanStrategy):
        return None
    return (
        f"its training loader and steps go through the training plan, which the Trainer's strategy "
        f"({type(trainer.strategy).__name__}) does not apply: use strategy=lbp_motion.training_plan."
        f"TrainingPlanStrategy() (one device; lbp fit picks it when trainer.strategy is auto) or "
        f"lbp_motion.federated.FedAvgStrategy ({GUIDE})"
    )


def default_strategy(strategy: Any, callbacks: Iterable[Any], devices: Any = None) -> Any:
    """The strategy ``lbp`` gives a Trainer: :class:`TrainingPlanStrategy` when
    ``strategy`` is ``auto`` (or None), the run is on one device and a callback is a
    stage; else ``strategy`` unchanged."""
    one_device = devices in (None, "auto", 1, "1") or (
        isinstance(devices, (list, tuple)) and len(devices) == 1
    )
    if (
        strategy in (None, "auto")
        and one_device
        and any(isinstance(c, TrainingStage) for c in callbacks)
    ):
        return TrainingPlanStrategy()
    return strategy


def accelerator_device(trainer: pl.Trainer) -> torch.device:
    """The device of the Trainer's accelerator: cuda:0 on a GPU, mps:0 on Apple, else the CPU."""
    if isinstance(trainer.accelerator, CUDAAccelerator):
        return torch.device("cuda", 0)
    if isinstance(trainer.accelerator, MPSAccelerator):
        return torch.device("mps", 0)
    return torch.device("cpu")
