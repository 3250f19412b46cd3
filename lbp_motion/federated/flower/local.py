"""A site's local training in one round: the project's normal Lightning training.

:func:`train_locally` builds a ``Trainer`` from the config's own trainer settings and
callbacks (so whatever the config switches on, e.g. a differential-privacy callback,
applies unchanged), loads the global weights into the config's task and fits it for
one "epoch" made of E = ``local_epochs`` passes over the site's training data. The
site's round (:class:`SiteRound`) is the federation stage of the training plan
(:mod:`lbp_motion.training_plan`): it makes the DataModule's training loader the
round's batches, and a privacy stage samples from them. Every
random choice repeats the in-process simulation (:class:`~lbp_motion.federated.FedAvgStrategy`)
for the same seed, client and round, so that the Flower run and the simulation give
the same global model:

* pass ``e`` is shuffled by a generator seeded with (seed, client, round, e);
* torch's RNG (dropout) is seeded with (seed, client, round) before the first step;
* the optimiser starts fresh and its schedule is stepped ``round`` times first, so the
  learning rate is the round's (``lr * decay^round`` with the default schedule).

The metrics returned are every finite scalar the Trainer logged (``train/loss``,
``dp/epsilon``, ...), whether through ``self.log`` or a logger's ``log_metrics``.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment

from lbp_motion.atomic import write_bytes
from lbp_motion.errors import ConfigError
from lbp_motion.federated.clients import FederationSpec, mix_seed, split_clients
from lbp_motion.federated.flower.messages import scalar_metrics
from lbp_motion.federated.server import scaffold_client_control
from lbp_motion.training_plan import FEDERATION, TrainData, TrainingPlanStrategy, TrainingStage


class SiteRoundLoader:
    """The training batches of one site in one round: E shuffled passes over its data,
    each batch tagged with the site's ``client`` id (as in the simulation)."""

    def __init__(
        self, dataset, batch_size: int, *, seed: int, client: int, round_: int, local_epochs: int
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed, self.client, self.round, self.local_epochs = seed, client, round_, local_epochs

    def pass_loader(self, epoch: int) -> torch.utils.data.DataLoader:
        generator = torch.Generator().manual_seed(
            mix_seed(self.seed, self.client, self.round, epoch)
        )
        return torch.utils.data.DataLoader(
            self.dataset, batch_size=self.batch_size, shuffle=True, generator=generator
        )

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size) * self.local_epochs

    def __iter__(self) -> Iterator[dict]:
        for epoch in range(self.local_epochs):
            for batch in self.pass_loader(epoch):
                batch["client"] = torch.full((len(batch["y"]),), self.client, dtype=torch.long)
                yield batch


class SiteRound(pl.Callback, TrainingStage):
    """This site's turn in one round. As the federation stage of the training plan it
    makes the training loader the round's batches (:class:`SiteRoundLoader`), or, in a
    private round, one plain pass over the site's data for the privacy stage to
    Poisson-sample; it puts the learning-rate schedule at the round and seeds torch's
    RNG like the simulation does when a client starts its turn.

    ``num_examples`` is n_k (the site's real training windows), known once the fit has
    asked for its training loader.
    """

    plan_order = FEDERATION

    def __init__(
        self,
        seed: int,
        client: int,
        round_: int,
        local_epochs: int = 1,
        private: bool = False,
        partition: FederationSpec | None = None,
    ) -> None:
        self.seed, self.client, self.round = seed, client, round_
        self.local_epochs, self.private = local_epochs, private
        self.partition = partition
        self.num_examples = 0

    def transform_train_loader(
        self, loader: Any, data: TrainData, trainer: pl.Trainer | None
    ) -> Any:
        if self.partition is not None:  # a virtual SuperNode: client k's part of the data
            dataset, self.num_examples = partition_dataset(data, self.partition, self.client)
        else:
            dataset, self.num_examples = site_dataset(data)
        # E local passes are E Trainer epochs of the privacy stage's Poisson batches
        if self.private:
            return torch.utils.data.DataLoader(dataset, batch_size=data.batch_size)
        return SiteRoundLoader(
            dataset,
            data.batch_size,
            seed=self.seed,
            client=self.client,
            round_=self.round,
            local_epochs=self.local_epochs,
        )

    def on_train_start(self, trainer, pl_module) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
            for config in trainer.lr_scheduler_configs:
                for _ in range(self.round):
                    config.scheduler.step()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            torch.manual_seed(mix_seed(self.seed, self.client, self.round, 104729))


class ScaffoldCorrection(pl.Callback):
    """SCAFFOLD at a site: after each backward pass and before the optimiser (and any
    gradient clipping) uses the gradients, add each raw gradient to the round's sum and
    correct it by ``c - c_i``, as the simulation does
    (:meth:`~lbp_motion.federated.strategy.FedAvgStrategy.optimizer_step`).
    :meth:`result` is the site's new control variate and its change."""

    def __init__(
        self, server_control: dict[str, torch.Tensor], client_control: dict[str, torch.Tensor]
    ) -> None:
        self.c, self.c_i = server_control, client_control
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        stepped = False
        for name, p in pl_module.named_parameters():
            if p.grad is None or name not in self.c:
                continue
            stepped = True
            grad = p.grad.detach()
            self.sums[name] = self.sums[name] + grad if name in self.sums else grad.clone()
            p.grad.add_(self.c[name].to(p.grad.device) - self.c_i[name].to(p.grad.device))
        self.steps += int(stepped)

    def result(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(c_i', c_i' - c_i): the mean raw gradient of the round and its change."""
        sums = {k: self.sums.get(k, torch.zeros_like(v)).cpu() for k, v in self.c_i.items()}
        return scaffold_client_control(self.c_i, sums, self.steps)


class MetricsCapture(Logger):
    """A logger that keeps the last value of every scalar logged (nothing written)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, float] = {}

    @property
    def name(self) -> str:
        return "capture"

    @property
    def version(self) -> int:
        return 0

    @property
    @rank_zero_experiment
    def experiment(self) -> None:
        return None

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.values.update(scalar_metrics(metrics))


def site_dataset(data: TrainData) -> tuple[Any, int]:
    """The site's training dataset as one client of the simulation sees it (balanced
    like the training split when the config balances) and n_k: its real training
    windows before balancing."""
    real = data.dataset
    n = len(real)
    if n == 0:
        raise ConfigError(
            "data: this site has no training samples (check data.root, the split and data.train_sites)"
        )
    return data.balance(torch.utils.data.Subset(real, list(range(n)))), n


def partition_dataset(data: TrainData, spec: FederationSpec, client: int) -> tuple[Any, int]:
    """Client ``client``'s part of the training data by the config's partition, exactly as
    the in-process simulation splits it (:func:`~lbp_motion.federated.clients.split_clients`,
    balanced per client), and its n_k."""
    info = data.require_info("lbp federate simulate", "client partitions are by subject")
    clients = split_clients(data.dataset, info, spec, balance=data.balance)
    return clients.datasets[client], clients.num_examples[client]


def site_training_data(datamodule) -> tuple[Any, int]:
    """:func:`site_dataset` of a DataModule outside a fit (it is set up first)."""
    datamodule.setup("fit")
    return site_dataset(TrainData(datamodule))


def _is_private(callback: Any) -> bool:
    try:
        from lbp_motion.privacy import DifferentialPrivacy
    except ImportError:  # the dp extra is not installed: no DP callback can be configured either
        return False
    return isinstance(callback, DifferentialPrivacy)


def _prepare_private_round(
    callbacks, trainer_kwargs: dict, *, fed, client_id: int, lbp_round: int, work_dir: str | None
) -> None:
    """DP-SGD at a site (docs/privacy.md, docs/deploy.md). The site is one party with
    its own accountant: the callback draws its own Poisson batches from the site's
    training windows (so E local passes are E Trainer epochs, not the simulation's
    shuffled passes), and its privacy state (accountant history, noise multiplier)
    persists across rounds, each a separate fit (often a separate process), in
    ``<work_dir>/dp_state.json``; ``target_epsilon`` is calibrated for rounds x E passes.
    Torch is seeded per (seed, site, round) first, so the Poisson draws and the noise
    of one round are never those of another."""
    for callback in callbacks:
        if callback.state_file is None:
            callback.state_file = str(Path(work_dir or ".") / "dp_state.json")
        if callback.epochs is None:
            callback.epochs = fed.rounds * fed.local_epochs
    trainer_kwargs["max_epochs"] = fed.local_epochs
    torch.manual_seed(mix_seed(fed.seed, client_id, lbp_round, 7919))


#: a site's own state between rounds, in its work_dir: its local layers
SITE_STATE = "site_state.pt"


def load_site_state(work_dir: str | Path) -> dict[str, Any]:
    """The state a site keeps between rounds (``local``: its local layers), read as
    tensors and plain data only; empty before its first round."""
    from lbp_motion.trust import load_checkpoint

    path = Path(work_dir) / SITE_STATE
    return dict(load_checkpoint(path)) if path.is_file() else {}


def save_site_state(work_dir: str | Path, state: dict[str, Any]) -> None:
    """Write the site's state atomically (a restarted site resumes from it)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(Path(work_dir) / SITE_STATE, buffer.getvalue())


def train_locally(
    experiment,
    global_state: dict[str, torch.Tensor],
    *,
    lbp_round: int,
    client_id: int,
    work_dir: str | None = None,
    extra_callbacks: tuple[pl.Callback, ...] = (),
    partitioned: bool = False,
) -> tuple[dict[str, torch.Tensor], dict[str, float | int]]:
    """One round of local training at a site; returns its state dict and metrics
    (``num-examples`` = n_k, ``client-id``, ``train-seconds`` and the logged scalars).
    ``extra_callbacks`` (e.g. :class:`ScaffoldCorrection`) run before the config's.
    ``partitioned``: the site is client ``client_id`` of the config's partition of the
    data it reads (a virtual SuperNode of ``lbp federate simulate``), not a clinic
    training on all of it."""
    task, dm, fed = experiment.task, experiment.datamodule, experiment.federation
    task.load_state_dict(global_state)
    capture = MetricsCapture()
    kwargs = dict(experiment.trainer_kwargs)
    kwargs.update(
        max_epochs=1,
        logger=[capture],
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        reload_dataloaders_every_n_epochs=0,
    )
    if work_dir is not None:
        kwargs["default_root_dir"] = work_dir
    # checkpoints and early stopping are the server's business (they watch val/* of the global model)
    own = [c for c in experiment.callbacks if not isinstance(c, (ModelCheckpoint, EarlyStopping))]
    private = [c for c in own if _is_private(c)]
    if private:
        _prepare_private_round(
            private, kwargs, fed=fed, client_id=client_id, lbp_round=lbp_round, work_dir=work_dir
        )
    site = SiteRound(
        fed.seed,
        client_id,
        lbp_round,
        fed.local_epochs,
        private=bool(private),
        partition=fed.client_spec() if partitioned else None,
    )
    trainer = pl.Trainer(
        callbacks=[site, *extra_callbacks, *own], strategy=TrainingPlanStrategy(), **kwargs
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        trainer.fit(task, datamodule=dm)
    seconds = time.perf_counter() - start
    metrics: dict[str, float | int] = {}
    metrics.update(capture.values)
    metrics.update(scalar_metrics(trainer.callback_metrics))
    metrics = {k: v for k, v in metrics.items() if k not in ("epoch", "step")}
    metrics.update(
        {
            "num-examples": int(site.num_examples),
            "client-id": int(client_id),
            "train-seconds": float(seconds),
        }
    )
    state = {k: v.detach().cpu().clone() for k, v in task.state_dict().items()}
    return state, metrics
