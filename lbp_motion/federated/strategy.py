"""FedAvg as a Lightning strategy: any ``lbp`` config becomes federated.

Choose it in a config::

    trainer:
      max_epochs: 30            # one round per epoch: 30 rounds
      strategy:
        class_path: lbp_motion.federated.FedAvgStrategy
        init_args: {num_clients: 3, partition: site, local_epochs: 1}

How a round runs (one training epoch). The strategy is the federation stage of the
training plan (:mod:`lbp_motion.training_plan`): it spreads the DataModule's real
training samples over clients by subject once, and each round makes the training
loader a :class:`~lbp_motion.federated.clients.FederatedLoader`: for each selected client
in turn it yields the batches of E local epochs over that client's own data, each
batch tagged with the client id. When the client id changes, the strategy keeps the
finished client's weights, loads the round's global weights and gives the next client
a fresh optimiser state (or its own, with ``persist_optimizer_state``), and seeds
torch's RNG with (seed, client, round) so dropout repeats exactly. Before validation
(and at the end of a round without validation) the kept weights are aggregated by
:func:`~lbp_motion.federated.fedavg.fedavg` with weights n_k, so validation,
checkpoints and the epoch counter (= round) see the global model. The learning-rate
schedule steps once per round: lr_r = lr x decay^r for every client.
"""

from __future__ import annotations

import copy
import csv
import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch

from lbp_motion.errors import ConfigError
from lbp_motion.federated.clients import (
    ClientData,
    FederatedLoader,
    FederationSpec,
    mix_seed,
    split_clients,
)
from lbp_motion.federated.fedavg import AggregationError, all_finite, fedavg
from lbp_motion.federated.local_layers import local_state_keys
from lbp_motion.federated.server import (
    ServerRule,
    scaffold_client_control,
    scaffold_server_control,
)
from lbp_motion.federated.vectorized import (
    VectorizedLoader,
    VectorizedRound,
    check_vectorizable,
    is_vectorized_batch,
    vectorization_problems,
)
from lbp_motion.training_plan import (
    FEDERATION,
    PRIVACY,
    TrainData,
    TrainingPlan,
    TrainingPlanStrategy,
    TrainingStage,
)

log = logging.getLogger(__name__)


class _RoundHooks(pl.Callback):
    """Aggregates at the end of a round that had no validation, and carries the
    strategy's state (server momentum, optimiser states) in checkpoints."""

    def __init__(self, strategy: FedAvgStrategy) -> None:
        self.strategy = strategy

    @property
    def state_key(self) -> str:
        return "FedAvgStrategy"

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.strategy.finish_round()

    def state_dict(self) -> dict[str, Any]:
        return self.strategy.server_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.strategy.load_server_state(state_dict)


class FedAvgStrategy(TrainingPlanStrategy, TrainingStage):
    """Federated Averaging (McMahan et al., 2017) simulated on one device.

    The DataModule needs ``train_subject_info()`` (partitions are by subject; see
    :mod:`lbp_motion.training_plan`) and nothing else federated.

    Args:
        num_clients: number of clients K (``site`` and ``groups`` partitions imply it;
            null then).
        partition: how the DataModule spreads training subjects over clients:
            ``site``, ``groups``, ``iid`` or ``dirichlet`` (see :mod:`lbp_motion.federated.partition`).
        alpha: Dirichlet concentration for ``dirichlet`` (smaller = more skew).
        subject_groups: the subject lists of ``groups``.
        local_epochs: E, local passes over a client's data per round.
        client_fraction: share of clients selected each round (at least one).
        seed: seeds partitions, client selection, shuffling and dropout per (client, round).
        mu: FedProx proximal weight (0: FedAvg).
        server_momentum: FedAvgM momentum beta of ``server_optimizer: sgd`` (0: FedAvg).
        server_lr: the server learning rate (eta) on the aggregated update.
        server_optimizer: ``sgd`` (FedAvg, FedAvgM), ``adam`` (FedAdam), ``yogi``
            (FedYogi) or ``adagrad`` (FedAdagrad) (Reddi et al., 2021; see
            :mod:`lbp_motion.federated.server`).
        server_betas: ``[b1, b2]`` of the adaptive server optimisers.
        server_tau: their adaptivity term tau.
        warmup_rounds: the server learning rate grows linearly over these first rounds.
        aggregation: ``mean`` (n_k-weighted, FedAvg), or the robust ``median`` or
            ``trimmed_mean`` (coordinate-wise, unweighted).
        trim_fraction: the share of clients cut at each end per coordinate by ``trimmed_mean``.
        clip_update_norm: clip each client's update (its weights minus the global ones)
            to this L2 norm before aggregating (null: no clipping).
        local_parameters: glob patterns of state-dict keys that are never averaged: each
            client keeps its own (e.g. ``["model.input.0.*"]`` to absorb each clinic's
            camera), starting from the initial values; they are left out of aggregation,
            clipping and the server optimiser, and the simulated global model (validated
            and tested) holds the clients' n_k-weighted mean of them.
        scaffold: SCAFFOLD (Karimireddy et al., 2020): each local gradient is corrected
            by ``c - c_i`` (server and client control variates, kept per client across
            rounds and in checkpoints); ``c_i`` becomes the mean of the client's raw
            gradients of the round (option II under plain SGD, and a gradient estimate
            under Adam too; see :func:`~lbp_motion.federated.server.scaffold_client_control`).
            Not with differential privacy.
        fedbn: keep every normalisation layer local (FedBN, Li et al., 2021): adds the
            keys of BatchNorm, LayerNorm, GroupNorm and InstanceNorm layers to
            ``local_parameters``.
        finetune_epochs: after the last round, train each clinic's personalised model
            (the global model with the clinic's local layers) this many epochs on the
            clinic's own data, and test it on the clinic's own held-out subjects (see
            :mod:`lbp_motion.federated.personalise`); 0: no fine-tuning. Not with
            differential privacy.
        persist_optimizer_state: keep each client's optimiser state across rounds
            (default: a fresh optimiser state every round).
        vectorize: train the selected clients of a round together, one step per batch
            index on stacked parameters (``torch.func.vmap``), instead of one client after
            the other; see :mod:`lbp_motion.federated.vectorized` for what it supports.
        vectorize_chunk: at most this many clients in one vectorised call (null: all
            selected clients), to bound device memory.
        min_clients: a round fails unless this many clients return finite weights.
        device: ``None`` uses the Trainer's accelerator (GPU when given one).
    """

    plan_order = FEDERATION  # the first stage: DP samples from each client's data

    def __init__(
        self,
        num_clients: int | None = 3,
        partition: Literal["site", "groups", "iid", "dirichlet"] = "iid",
        alpha: float = 0.5,
        subject_groups: list[list[str]] | None = None,
        local_epochs: int = 1,
        client_fraction: float = 1.0,
        seed: int = 0,
        mu: float = 0.0,
        server_momentum: float = 0.0,
        server_lr: float = 1.0,
        server_optimizer: Literal["sgd", "adam", "yogi", "adagrad"] = "sgd",
        server_betas: tuple[float, float] = (0.9, 0.99),
        server_tau: float = 1e-3,
        warmup_rounds: int = 0,
        aggregation: Literal["mean", "median", "trimmed_mean"] = "mean",
        trim_fraction: float = 0.1,
        clip_update_norm: float | None = None,
        local_parameters: list[str] | None = None,
        fedbn: bool = False,
        scaffold: bool = False,
        finetune_epochs: int = 0,
        persist_optimizer_state: bool = False,
        vectorize: bool = False,
        vectorize_chunk: int | None = None,
        min_clients: int = 1,
        device: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(device=device, **kwargs)
        self.spec = FederationSpec(
            num_clients=num_clients,
            partition=partition,
            alpha=alpha,
            subject_groups=subject_groups,
            local_epochs=local_epochs,
            client_fraction=client_fraction,
            seed=seed,
        )
        self.mu = mu
        self.rule = ServerRule(
            aggregation=aggregation,
            trim=trim_fraction,
            clip_norm=clip_update_norm,
            optimizer=server_optimizer,
            lr=server_lr,
            momentum=server_momentum,
            betas=tuple(server_betas),
            tau=server_tau,
            warmup_rounds=warmup_rounds,
        )
        self.local_parameters = list(local_parameters or [])
        self.fedbn = fedbn
        self._local_keys: frozenset[str] | None = None
        self._local_states: dict[int, dict[str, torch.Tensor]] = {}
        self._initial_local: dict[str, torch.Tensor] | None = None  # local layers before round 0
        self._server_state: dict[str, Any] = {}
        self.scaffold = scaffold
        self._control: dict[str, torch.Tensor] | None = None  # SCAFFOLD's c
        self._client_controls: dict[int, dict[str, torch.Tensor]] = {}  # its c_i
        self._control_deltas: list[dict[str, torch.Tensor]] = []
        self._steps: dict[int, int] = defaultdict(int)
        self._gradient_sums: dict[str, torch.Tensor] = {}  # the current client's raw gradients
        self.finetune_epochs = finetune_epochs
        self.persist_optimizer_state = persist_optimizer_state
        self.vectorize = vectorize
        self.vectorize_chunk = vectorize_chunk
        self._round: VectorizedRound | None = None  # the clients of a vectorised round
        self._round_clients: list[int] = []
        self.min_clients = min_clients
        self._global: dict[str, torch.Tensor] | None = None
        self._client: int | None = None
        self._kept: list[tuple[int, dict[str, torch.Tensor]]] = []
        self._failed: list[int] = []
        self._losses: dict[int, list[float]] = defaultdict(list)
        self._optimizer_states: dict[int, dict] = {}
        self._clients: ClientData | None = None
        # n_k of each client, known from the first training loader
        self.num_examples: list[int] = []
        self.client_subjects: list[list[str]] = []
        self.subject_sites: dict[str, str] = {}  # each training subject's site, when known
        self.history: list[dict[str, Any]] = []

    # -- set-up ------------------------------------------------------------------------
    def validate_options(self) -> None:
        """Raise :class:`ConfigError` for invalid options (checked in ``setup``, so that
        ``lbp`` reports them as one line rather than inside jsonargparse's errors)."""
        spec = self.spec
        problems = []
        if spec.local_epochs < 1:
            problems.append(f"local_epochs={spec.local_epochs}; expected at least 1")
        if self.mu < 0:
            problems.append(f"mu={self.mu}; expected >= 0")
        problems += self.rule.problems()
        if spec.alpha <= 0:
            problems.append(f"alpha={spec.alpha}; expected > 0")
        if self.finetune_epochs < 0:
            problems.append(f"finetune_epochs={self.finetune_epochs}; expected >= 0")
        if self.min_clients < 1:
            problems.append(f"min_clients={self.min_clients}; expected at least 1")
        if self.vectorize_chunk is not None and self.vectorize_chunk < 1:
            problems.append(f"vectorize_chunk={self.vectorize_chunk}; expected at least 1")
        if not 0 < spec.client_fraction <= 1:
            problems.append(f"client_fraction={spec.client_fraction}; expected a value in (0, 1]")
        if problems:
            raise ConfigError("trainer.strategy: " + "; ".join(problems))

    def setup(self, trainer: pl.Trainer) -> None:
        self.validate_options()
        # before super().setup(): configure_optimizers may ask for the loader
        if trainer.state.fn == "fit":
            self.spec.round_fn = lambda: trainer.current_epoch
            self._clients = None  # partitioned again from this fit's DataModule
        super().setup(trainer)
        if trainer.state.fn != "fit":
            return
        private = any(s.plan_order == PRIVACY for s in TrainingPlan.of(trainer).stages)
        if self.scaffold and private:
            raise ConfigError(
                "trainer.strategy.init_args.scaffold: true does not combine with differential "
                "privacy (the DP optimiser replaces the corrected gradients); set scaffold: false"
            )
        if self.finetune_epochs and private:
            raise ConfigError(
                f"trainer.strategy.init_args.finetune_epochs: {self.finetune_epochs} does not combine "
                "with differential privacy (fine-tuning is not private training); set finetune_epochs: 0"
            )
        if self.vectorize:
            problems = vectorization_problems(self, trainer, private)
            if problems:
                raise ConfigError(
                    "trainer.strategy.init_args.vectorize: true does not combine with "
                    + "; ".join(problems)
                    + "; set vectorize: false"
                )
            check_vectorizable(self.lightning_module)
        trainer.reload_dataloaders_every_n_epochs = 1  # a new client selection each round
        if not any(isinstance(c, _RoundHooks) for c in trainer.callbacks):
            trainer.callbacks.insert(0, _RoundHooks(self))

    # -- the federation stage of the training plan -----------------------------------------
    def transform_train_loader(
        self, loader: Any, data: TrainData, trainer: pl.Trainer | None
    ) -> FederatedLoader:
        """This round's per-client loader; the clients' data are split on the first call."""
        if self._clients is None:
            self._split_clients(data)
        loader = VectorizedLoader if self.vectorize else FederatedLoader
        return loader(
            self._clients.datasets, self._clients.num_examples, data.batch_size, self.spec
        )

    def _split_clients(self, data: TrainData) -> ClientData:
        info = data.require_info("FedAvgStrategy", "client partitions are by subject")
        self._clients = split_clients(data.dataset, info, self.spec, balance=data.balance)
        self.num_examples, self.client_subjects = (
            self._clients.num_examples,
            self._clients.subjects,
        )
        if info.get("site") is not None:
            self.subject_sites = dict(zip(map(str, info["subject"]), info["site"]))
        log.info("FedAvg: %d clients, n_k = %s", len(self.num_examples), self.num_examples)
        return self._clients

    def client_data(self, datamodule: Any) -> ClientData:
        """Each client's training data (split from ``datamodule`` unless a fit did)."""
        return self._clients or self._split_clients(TrainData(datamodule))

    @property
    def personalises(self) -> bool:
        """Whether each clinic has its own model: local layers or fine-tuning."""
        return self.finetune_epochs > 0 or bool(self.local_keys)

    @property
    def local_states(self) -> dict[int, dict[str, torch.Tensor]]:
        """Each client's own local layers after the last round."""
        return dict(self._local_states)

    @property
    def restore_checkpoint_after_setup(self) -> bool:
        return True  # so that _RoundHooks, added in setup(), gets its state back on resume

    def on_train_start(self) -> None:
        super().on_train_start()
        if self._global is None:
            self._global = self._snapshot()
        if self._initial_local is None:
            self._initial_local = {k: self._global[k].clone() for k in self.local_keys}

    # -- local layers --------------------------------------------------------------------
    @property
    def local_keys(self) -> frozenset[str]:
        """The state-dict keys each client keeps for itself (``local_parameters``,
        ``fedbn``); checked once against the model: a pattern that matches nothing is an
        error."""
        if self._local_keys is None:
            self._local_keys = local_state_keys(
                self.lightning_module, self.local_parameters, self.fedbn
            )
        return self._local_keys

    # -- one client after the other ------------------------------------------------------
    def _snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.lightning_module.state_dict().items()}

    def _switch_to(self, client: int) -> None:
        module = self.lightning_module
        if self._client is not None:
            self._keep_current()
        self._gradient_sums = {}  # SCAFFOLD: this client's gradients from here on
        module.load_state_dict(self._global)
        if (
            self.local_keys
        ):  # the client's own local layers; before its first round, the initial ones
            own = self._local_states.get(client, self._initial_local)
            module.load_state_dict(own, strict=False)
        optimizer = module.trainer.optimizers[0]
        if self.persist_optimizer_state and client in self._optimizer_states:
            # the client's moment estimates, but this round's learning rate (the schedule is global)
            groups = optimizer.state_dict()["param_groups"]
            optimizer.load_state_dict(
                {"state": self._optimizer_states[client]["state"], "param_groups": groups}
            )
        else:
            optimizer.state = defaultdict(dict)
        torch.manual_seed(mix_seed(self.spec.seed, client, module.current_epoch, 104729))
        self._client = client

    def _keep_current(self) -> None:
        self._keep(self._client, self._snapshot())
        if self.persist_optimizer_state:
            self._optimizer_states[self._client] = copy.deepcopy(
                self.lightning_module.trainer.optimizers[0].state_dict()
            )
        self._client = None

    def _keep(self, client: int, state: dict[str, torch.Tensor]) -> None:
        """Keep a finished client's weights for aggregation (left out when not finite)."""
        if all_finite(state):
            self._kept.append((client, state))
            if self.scaffold:
                self._update_client_control(client)
        else:
            log.warning(
                "round %d: client %d returned non-finite weights; left out",
                self.lightning_module.current_epoch,
                client,
            )
            self._failed.append(client)

    # -- all clients at once -------------------------------------------------------------
    def _vectorized_step(self, batch: dict[str, Any]) -> None:
        """One step of every selected client that still has a batch (``vectorize``)."""
        module = self.lightning_module
        if self._round is None:
            self._round_clients = [int(c) for c in batch["clients"]]
            starts = []
            for client in self._round_clients:
                own = self._local_states.get(client, self._initial_local) if self.local_keys else {}
                starts.append({**self._global, **(own or {})})
            self._round = VectorizedRound(
                module,
                starts,
                module.trainer.optimizers[0],
                mu=self.mu,
                shared=frozenset(self._global) - self.local_keys,
                global_state=self._global,
                seed=mix_seed(self.spec.seed, module.current_epoch, 104729),
                chunk=self.vectorize_chunk,
            )
        for k, outputs, loss in self._round.step(batch["batches"]):
            client = self._round_clients[k]
            self._losses[client].append(float(loss))
            module.record_step("train", batch["batches"][k], outputs, loss)
        return None

    def _keep_vectorized(self) -> None:
        for k, client in enumerate(self._round_clients):
            self._keep(client, self._round.client_state(k, like=self._global))
        self._round, self._round_clients = None, []

    def around_training_step(self, batch: Any, step: Callable[[], Any]) -> Any:
        """One client's step: switch to the batch's client first; a failing client is
        left out of the round; FedProx adds its proximal term to the loss."""
        if is_vectorized_batch(batch):
            return self._vectorized_step(batch)
        # an empty (Poisson-sampled, differential privacy) batch names its client in client_id
        client = int(batch["client_id"]) if "client_id" in batch else int(batch["client"][0])
        if client in self._failed:
            return None  # the rest of a failed client's batches this round
        if client != self._client:
            self._switch_to(client)
        try:
            out = step()
        except Exception as err:  # a failing client is left out of the round
            if isinstance(err, (ConfigError, KeyboardInterrupt)):
                raise
            log.warning(
                "round %d: client %d failed (%s); left out",
                self.lightning_module.current_epoch,
                client,
                err,
            )
            self._failed.append(client)
            self._client = None
            self.lightning_module.load_state_dict(self._global)
            return None
        loss = out["loss"] if isinstance(out, dict) else out
        if loss is not None:
            self._losses[client].append(float(loss.detach()))
            if self.mu > 0:
                prox = sum(
                    (p - self._global[name].to(p.device)).pow(2).sum()
                    for name, p in self.lightning_module.named_parameters()
                    if p.requires_grad and name not in self.local_keys
                )
                loss = loss + self.mu / 2 * prox
                out = {**out, "loss": loss} if isinstance(out, dict) else loss
        return out

    # -- SCAFFOLD ------------------------------------------------------------------------
    def _controls(self, client: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(c, c_i), zeros until the first update."""
        if self._control is None:
            self._control = {  # the shared trainable parameters (local ones are not averaged)
                name: torch.zeros_like(p.detach())
                for name, p in self.lightning_module.named_parameters()
                if p.requires_grad and name not in self.local_keys
            }
        if client not in self._client_controls:
            self._client_controls[client] = {
                k: torch.zeros_like(v) for k, v in self._control.items()
            }
        return self._control, self._client_controls[client]

    def optimizer_step(self, optimizer, closure, model=None, **kwargs):
        """SCAFFOLD: after the backward pass and before the optimiser uses the gradients,
        add each raw gradient to the client's sum and correct it by ``c - c_i``.

        The client is read after ``closure()``: the closure runs the training step,
        which switches to the batch's client at the first batch of each client."""
        if not self.scaffold:
            return super().optimizer_step(optimizer, closure, model, **kwargs)

        def corrected():
            out = closure()
            client = self._client
            if client is None:  # a failed client's batch: nothing to correct
                return out
            c, c_i = self._controls(client)
            sums, stepped = self._gradient_sums, False
            for name, p in self.lightning_module.named_parameters():
                if p.grad is not None and name in c:
                    stepped = True
                    if name in sums:
                        sums[name].add_(p.grad.detach())
                    else:
                        sums[name] = p.grad.detach().clone()
                    p.grad.add_(c[name].to(p.grad.device) - c_i[name].to(p.grad.device))
            self._steps[client] += int(stepped)
            return out

        return super().optimizer_step(optimizer, corrected, model, **kwargs)

    def _update_client_control(self, client: int) -> None:
        c, c_i = self._controls(client)
        sums = {k: self._gradient_sums.get(k, torch.zeros_like(v)) for k, v in c.items()}
        new, delta = scaffold_client_control(c_i, sums, self._steps.pop(client, 0))
        self._client_controls[client] = new
        self._control_deltas.append(delta)
        self._gradient_sums = {}

    # -- aggregation ---------------------------------------------------------------------
    def finish_round(self) -> None:
        """Aggregate the clients of this round into the global model (once per round)."""
        if self._client is not None:
            self._keep_current()
        if self._round is not None:
            self._keep_vectorized()
        if not self._kept and not self._failed:
            return  # nothing trained since the last aggregation (e.g. the sanity check)
        failed = sorted(set(self._failed) - {c for c, _ in self._kept})
        if len(self._kept) < self.min_clients:
            raise AggregationError(
                f"round {self.lightning_module.current_epoch}: {len(self._kept)} client(s) returned usable weights "
                f"(failed: {failed}); at least min_clients={self.min_clients} are needed"
            )
        weights = [self.num_examples[c] for c, _ in self._kept]
        round_ = self.lightning_module.current_epoch
        local = self.local_keys
        # the server sees the shared layers only (as a Flower server does)
        shared = {k: v for k, v in self._global.items() if k not in local}
        states = [{k: v for k, v in s.items() if k not in local} for _, s in self._kept]
        aggregate, report = self.rule.aggregate(shared, states, weights)
        stepped, self._server_state = self.rule.step(shared, aggregate, self._server_state, round_)
        new_global = {**self._global, **stepped}
        if local:
            for client, state in self._kept:
                self._local_states[client] = {k: state[k].clone() for k in local}
            # the simulated global model, validated and tested, holds the clients' mean
            # local layers (a Flower server never sees them: there they keep their initial values)
            new_global.update(fedavg([{k: s[k] for k in local} for _, s in self._kept], weights))
        if self.scaffold and self._control_deltas:
            self._control = scaffold_server_control(
                self._control, self._control_deltas, len(self.num_examples)
            )
        self._control_deltas, self._steps = [], defaultdict(int)
        self._global = new_global
        self.lightning_module.load_state_dict(new_global)
        self._record_round(failed, report)
        self._kept, self._failed, self._losses = [], [], defaultdict(list)

    def _record_round(self, failed: list[int], report: dict[str, Any]) -> None:
        trainer = self.lightning_module.trainer
        round_ = trainer.current_epoch
        metrics: dict[str, float] = {"round": round_}
        for (client, _), norm in zip(self._kept, report["update_norms"]):
            losses = self._losses.get(client, [])
            metrics[f"client_{client}/train_loss"] = sum(losses) / max(len(losses), 1)
            metrics[f"client_{client}/n"] = self.num_examples[client]
            metrics[f"client_{client}/update_norm"] = norm
        metrics["clients"] = len(self._kept)
        if self.rule.clip_norm is not None:
            metrics["clipped_clients"] = report["clipped"]
        metrics["failed_clients"] = len(failed)
        for callback in trainer.callbacks:  # e.g. DifferentialPrivacy: each client's epsilon
            if callable(getattr(callback, "round_metrics", None)):
                metrics.update(callback.round_metrics([c for c, _ in self._kept]))
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        self.history.append({**metrics, "failed": " ".join(map(str, failed))})
        self._write_history(trainer)  # again after validation, with the global metrics

    def on_validation_start(self) -> None:
        super().on_validation_start()
        if self.lightning_module.trainer.state.fn == "fit":
            self.finish_round()

    def on_validation_end(self) -> None:
        super().on_validation_end()
        trainer = self.lightning_module.trainer
        if trainer.state.fn != "fit" or trainer.sanity_checking or not self.history:
            return
        row = self.history[-1]
        for key, value in trainer.callback_metrics.items():
            if key.startswith("val/"):
                row[key] = float(value)
        self._write_history(trainer)

    def on_train_end(self) -> None:
        self.finish_round()
        super().on_train_end()

    def _write_history(self, trainer: pl.Trainer) -> None:
        if trainer.log_dir is None:
            return
        Path(trainer.log_dir).mkdir(parents=True, exist_ok=True)
        path = Path(trainer.log_dir) / "rounds.csv"
        keys = sorted({k for row in self.history for k in row}, key=lambda k: (k != "round", k))
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)

    # -- checkpoints -----------------------------------------------------------------------
    def server_state(self) -> dict[str, Any]:
        return {
            "velocity": self._server_state.get("velocity"),  # the key of earlier versions
            "server": self._server_state,
            "local_states": self._local_states,
            "initial_local": self._initial_local,
            "scaffold": {"server": self._control, "clients": self._client_controls},
            "optimizer_states": self._optimizer_states,
            "history": self.history,
        }

    def load_server_state(self, state: dict[str, Any]) -> None:
        server = state.get("server")
        if server is None:  # a checkpoint of an earlier version: FedAvgM's velocity only
            server = {"velocity": state["velocity"]} if state.get("velocity") else {}
        self._server_state = dict(server)
        self._local_states = dict(state.get("local_states") or {})
        self._initial_local = state.get("initial_local")
        scaffold = state.get("scaffold") or {}
        self._control = scaffold.get("server")
        self._client_controls = dict(scaffold.get("clients") or {})
        self._optimizer_states = state.get("optimizer_states", {})
        self.history = list(state.get("history", []))
