"""DP-SGD for any ``lbp`` Trainer: a Lightning callback named in the config.

::

    trainer:
      callbacks:
        - class_path: lbp_motion.privacy.DifferentialPrivacy
          init_args: {noise_multiplier: 1.0, max_grad_norm: 1.0, delta: 1.0e-5, unit: subject}

What it does to a fit (docs/privacy.md has the whole story):

1. ``setup``: converts the task's networks (:func:`~lbp_motion.privacy.convert.make_private_model`)
   and checks the run can be private (no balancing, no class-weighted loss, no FedProx,
   no gradient accumulation, a strategy that applies the training plan).
2. As the privacy stage of the training plan (:mod:`lbp_motion.training_plan`), it
   makes each training loader draw Poisson batches (:mod:`~lbp_motion.privacy.sampling`),
   by window or by subject; in a federated run, each client from its own data. A step
   on an empty Poisson batch gives no loss (the optimiser adds noise only).
3. ``on_fit_start``: attaches Opacus' per-sample-gradient hooks to the task and wraps
   its optimiser in :class:`~lbp_motion.privacy.optimizer.UnitDPOptimizer`.
4. Each step: the privacy state of the batch's holder (the training set, or the
   batch's client) is switched in: its noise multiplier, expected batch size and
   accountant; the step clips, adds noise and counts.
5. Each epoch (federated: round): logs ``dp/epsilon`` (the largest over clients) and
   ``dp/delta``; the FedAvg strategy adds every client's epsilon to ``rounds.csv``;
   ``metrics.json`` gets the ``dp/*`` keys of :meth:`DifferentialPrivacy.run_summary`.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch

from lbp_motion.atomic import write_json
from lbp_motion.errors import ConfigError
from lbp_motion.federated.clients import FederatedLoader, mix_seed
from lbp_motion.privacy.accounting import (
    ACCOUNTANTS,
    Party,
    epsilon_of,
    group_privacy,
    noise_for_target,
)
from lbp_motion.privacy.convert import make_private_model
from lbp_motion.privacy.sampling import (
    GROUP_KEY,
    PoissonFederatedLoader,
    poisson_loader,
    steps_per_epoch,
)
from lbp_motion.training_plan import PRIVACY, TrainData, TrainingStage, plan_problem

log = logging.getLogger(__name__)

CENTRAL = -1  # the party of a centralised run; clients are 0 .. K-1


class DifferentialPrivacy(pl.Callback, TrainingStage):
    """DP-SGD (Abadi et al., 2016) with Opacus for the Trainer it is given to.

    Args:
        noise_multiplier: sigma: the Gaussian noise's standard deviation in units of
            ``max_grad_norm``. Give this or ``target_epsilon``.
        target_epsilon: choose sigma so that the planned training spends at most this
            epsilon at ``delta`` (each federated client calibrates its own sigma).
        delta: the delta of the (epsilon, delta) guarantee; keep it well below
            1 / (number of privacy units).
        max_grad_norm: C, the clipping bound of one unit's gradient (L2 over all
            parameters).
        unit: the privacy unit. ``window``: neighbouring datasets differ in one window;
            ``subject``: in all windows of one subject (subjects are Poisson-sampled,
            their gradient clipped as one). See docs/privacy.md for what each protects.
        sample_rate: q, each unit's inclusion probability per step. Default:
            ``data.batch_size / number of training windows`` (of the client), for both
            units, so a batch holds ``batch_size`` windows on average.
        max_windows_per_subject: unit ``subject``: use at most this many (random) of a
            sampled subject's windows in a batch (bounds the batch; the guarantee is
            unchanged). Default: all.
        accountant: ``rdp`` (Rényi DP, Mironov 2017) or ``prv`` (privacy random
            variables, Gopi et al. 2021; tighter, slower).
        epochs: the planned number of passes over a party's data that ``target_epsilon``
            is calibrated for. Default: ``trainer.max_epochs`` (federated: rounds x
            local epochs). Give it when one Trainer's fit is a part of the training
            (e.g. one Flower round), together with ``state_file``.
        secure_mode: Opacus' noise that resists floating-point attacks (slower).
        state_file: a JSON file that keeps the privacy state (accountant history, sigma)
            across separate fits, e.g. one per Flower round: read at the start of a fit
            when it exists, written at its end.
    """

    plan_order = PRIVACY  # after the federation stage: each client samples its own data

    def __init__(
        self,
        noise_multiplier: float | None = None,
        target_epsilon: float | None = None,
        delta: float = 1e-5,
        max_grad_norm: float = 1.0,
        unit: Literal["window", "subject"] = "window",
        sample_rate: float | None = None,
        max_windows_per_subject: int | None = None,
        accountant: Literal["rdp", "prv"] = "rdp",
        epochs: int | None = None,
        secure_mode: bool = False,
        state_file: str | None = None,
    ) -> None:
        problems = []
        if (noise_multiplier is None) == (target_epsilon is None):
            problems.append("give exactly one of noise_multiplier and target_epsilon")
        if noise_multiplier is not None and noise_multiplier < 0:
            problems.append(f"noise_multiplier={noise_multiplier}; expected >= 0")
        if target_epsilon is not None and target_epsilon <= 0:
            problems.append(f"target_epsilon={target_epsilon}; expected > 0")
        if not 0 < delta < 1:
            problems.append(f"delta={delta}; expected a value in (0, 1)")
        if max_grad_norm <= 0:
            problems.append(f"max_grad_norm={max_grad_norm}; expected > 0")
        if unit not in ("window", "subject"):
            problems.append(f"unit={unit!r}; expected 'window' or 'subject'")
        if sample_rate is not None and not 0 < sample_rate <= 1:
            problems.append(f"sample_rate={sample_rate}; expected a value in (0, 1]")
        if max_windows_per_subject is not None and max_windows_per_subject < 1:
            problems.append(
                f"max_windows_per_subject={max_windows_per_subject}; expected at least 1"
            )
        if accountant not in ACCOUNTANTS:
            problems.append(f"accountant={accountant!r}; expected one of {ACCOUNTANTS}")
        if epochs is not None and epochs < 1:
            problems.append(f"epochs={epochs}; expected at least 1")
        if problems:
            raise ConfigError("DifferentialPrivacy: " + "; ".join(problems))
        self.noise_multiplier = noise_multiplier
        self.target_epsilon = target_epsilon
        self.delta = delta
        self.max_grad_norm = max_grad_norm
        self.unit = unit
        self.sample_rate = sample_rate
        self.max_windows_per_subject = max_windows_per_subject
        self.accountant = accountant
        self.epochs = epochs
        self.secure_mode = secure_mode
        self.state_file = state_file
        self.parties: dict[int, Party] = {}
        self._seed = 0
        self._hooks = None
        self._optimizer = None
        self._federated = False  # whether the last training loader was per-client

    # -- set-up --------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        convert_task(pl_module)
        if stage != "fit":
            return
        self._check_fit(trainer, pl_module)
        self._seed = torch.initial_seed()
        if self.state_file and Path(self.state_file).is_file():
            self.load_state_dict(json.loads(Path(self.state_file).read_text()))

    def _check_fit(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        problems = []
        dm = trainer.datamodule
        if dm is None:
            problems.append(
                "needs a DataModule (lbp's data section) whose training loader it can make Poisson"
            )
        elif getattr(dm, "balance", "none") != "none":
            problems.append(
                f"data.balance={dm.balance!r}: balancing makes samples from several windows (SMOTE) or "
                "drops some by class; use data.balance: none (and, if needed, a loss that does not weight classes)"
            )
        if dm is not None and getattr(dm, "augment_pipeline", None) is not None:
            problems.append(
                "data.augment: the Poisson loader reads the plain training windows (each epoch would reuse one "
                "draw of the augmentation) and the per-subject accounting cannot see inside the augmented "
                "dataset; set data.augment: null"
            )
        if getattr(pl_module.hparams, "class_weighted_loss", False):
            problems.append(
                "model.class_weighted_loss: the weighted mean divides by the batch's summed weights, so one "
                "window's gradient depends on the others; turn it off"
            )
        if getattr(trainer.strategy, "mu", 0) > 0:
            problems.append(
                "FedProx (trainer.strategy mu > 0): its proximal gradient is not part of the DP step; set mu: 0"
            )
        if trainer.world_size > 1:
            problems.append(
                "runs on one device (trainer.devices: 1); Opacus' distributed DP is not wired here"
            )
        if trainer.accumulate_grad_batches != 1:
            problems.append(
                "trainer.accumulate_grad_batches must be 1 (a Poisson batch is one step)"
            )
        bypassed = plan_problem(trainer)
        if bypassed:
            problems.append(bypassed)
        if problems:
            raise ConfigError("DifferentialPrivacy: " + "; ".join(problems))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from opacus.grad_sample import GradSampleHooks

        from lbp_motion.privacy.optimizer import UnitDPOptimizer

        optimizers = trainer.strategy.optimizers
        if len(optimizers) != 1:
            raise ConfigError(
                f"DifferentialPrivacy: the task has {len(optimizers)} optimisers; expected one"
            )
        base = optimizers[0]
        if isinstance(base, UnitDPOptimizer):
            base = base.original_optimizer
        self._hooks = GradSampleHooks(
            pl_module, batch_first=True, loss_reduction="mean", strict=False
        )
        self._optimizer = UnitDPOptimizer(
            base,
            noise_multiplier=0.0,
            max_grad_norm=self.max_grad_norm,
            expected_batch_size=1,
            loss_reduction="mean",
            secure_mode=self.secure_mode,
        )
        trainer.strategy.optimizers = [self._optimizer]

    # -- the privacy stage of the training plan: Poisson loaders and parties ------------------
    def transform_train_loader(
        self, loader: Any, data: TrainData, trainer: pl.Trainer | None
    ) -> Any:
        """Poisson batches from ``loader``'s data: one party, or one per client of a
        :class:`~lbp_motion.federated.clients.FederatedLoader`."""
        self._federated = isinstance(loader, FederatedLoader)
        if self._federated:
            rates, subjects = [], []
            for k, dataset in enumerate(loader.client_datasets):
                party_subjects = data.subjects_of(dataset)
                party = self._party(
                    k,
                    dataset,
                    party_subjects,
                    loader.batch_size,
                    trainer,
                    loader.spec.local_epochs,
                    data,
                )
                rates.append(party.sample_rate)
                subjects.append(party_subjects if self.unit == "subject" else None)
            return PoissonFederatedLoader(loader, rates, subjects, self.max_windows_per_subject)
        dataset = getattr(loader, "dataset", None)
        if dataset is None or not hasattr(dataset, "__len__"):
            raise ConfigError(
                "DifferentialPrivacy: the training loader must be a map-style DataLoader"
            )
        subjects = data.subjects_of(dataset)
        party = self._party(CENTRAL, dataset, subjects, loader.batch_size or 1, trainer, 1, data)
        seed = self._seed  # each epoch's draws depend on (seed, epoch) only: resumable

        def epoch_seed() -> int:
            return mix_seed(seed, trainer.current_epoch, 2718)

        return poisson_loader(
            dataset,
            subjects if self.unit == "subject" else None,
            party.sample_rate,
            epoch_seed,
            max_windows_per_subject=self.max_windows_per_subject,
            num_workers=loader.num_workers,
        )

    def around_training_step(self, batch: Any, step: Callable[[], Any]) -> Any:
        if isinstance(batch, dict) and GROUP_KEY in batch and batch[GROUP_KEY].numel() == 0:
            return None  # an empty Poisson batch: the optimiser makes a noise-only step
        return step()

    def _party(
        self,
        key: int,
        dataset,
        subjects,
        batch_size: int,
        trainer: pl.Trainer,
        local_epochs: int,
        data: TrainData,
    ) -> Party:
        if key in self.parties:
            return self.parties[key]
        n = len(dataset)
        if n == 0:
            raise ConfigError(f"DifferentialPrivacy: {_name(key)} has no training windows")
        if self.unit == "subject" and subjects is None:
            data.require_info(
                "DifferentialPrivacy", "unit 'subject' needs each training window's subject"
            )
            raise ConfigError(
                f"DifferentialPrivacy: unit 'subject' needs each training window's subject, and {_name(key)} is not "
                f"the training samples of {data.owner} (real_train_dataset()) or a part of them"
            )
        num_units = len(set(subjects)) if self.unit == "subject" else n
        q = self.sample_rate if self.sample_rate is not None else min(1.0, batch_size / n)
        if self.noise_multiplier is not None:
            sigma = float(self.noise_multiplier)
        else:
            epochs = self.epochs
            if epochs is None:
                if trainer.max_epochs is None or trainer.max_epochs < 0:
                    raise ConfigError(
                        "DifferentialPrivacy: target_epsilon needs trainer.max_epochs or the epochs option"
                    )
                epochs = trainer.max_epochs * local_epochs
            steps = epochs * steps_per_epoch(q)
            sigma = noise_for_target(self.target_epsilon, self.delta, q, steps, self.accountant)
            log.info(
                "DP %s: sigma %.4f for epsilon %.3g at delta %.3g over %d steps (q = %.4g)",
                _name(key),
                sigma,
                self.target_epsilon,
                self.delta,
                steps,
                q,
            )
        max_windows = max(Counter(subjects).values()) if subjects is not None else None
        party = Party(
            num_units=num_units,
            sample_rate=q,
            noise_multiplier=sigma,
            max_windows_per_subject=max_windows,
        )
        self.parties[key] = party
        return party

    # -- each step ---------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._optimizer is None:
            return
        if self._federated:
            self._optimizer.generator = None  # the FedAvg strategy seeds torch per (client, round)
        else:  # noise seeded per epoch, so a resumed run adds the noise an uninterrupted one would
            generator = torch.Generator(device=pl_module.device)
            self._optimizer.generator = generator.manual_seed(
                mix_seed(self._seed, trainer.current_epoch, 31337)
            )

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._optimizer is None or not isinstance(batch, dict) or GROUP_KEY not in batch:
            return
        key = int(batch["client_id"]) if "client_id" in batch else CENTRAL
        party = self.parties[key]
        opt = self._optimizer
        opt.noise_multiplier = party.noise_multiplier
        opt.expected_batch_size = party.expected_batch_units
        opt.step_hook = lambda _opt, party=party: party.step()
        opt.groups = batch[GROUP_KEY] if self.unit == "subject" else None
        opt.empty_batch = batch[GROUP_KEY].numel() == 0

    # -- reporting ------------------------------------------------------------------------------
    def epsilons(self) -> dict[int, float]:
        """Epsilon spent so far by each party (key -1: a centralised run; else client ids)."""
        return {
            k: epsilon_of(p.history, self.delta, self.accountant)
            for k, p in sorted(self.parties.items())
        }

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        eps = self.epsilons()
        if not eps:
            return
        pl_module.log("dp/epsilon", max(eps.values()), on_epoch=True, on_step=False)
        pl_module.log("dp/delta", float(self.delta), on_epoch=True, on_step=False)

    def round_metrics(self, clients: list[int] | None = None) -> dict[str, float]:
        """Per-round privacy values for the FedAvg strategy's ``rounds.csv``: every
        client's epsilon so far and ``dp/epsilon``, the largest."""
        eps = self.epsilons()
        out: dict[str, float] = {
            f"client_{k}/dp_epsilon": v for k, v in eps.items() if k != CENTRAL
        }
        if eps:
            out["dp/epsilon"] = max(eps.values())
            out["dp/delta"] = float(self.delta)
        return out

    def run_summary(self) -> dict[str, Any]:
        """The ``dp/*`` keys of ``metrics.json`` (docs/metrics.md)."""
        eps = self.epsilons()
        out: dict[str, Any] = {
            "dp/unit": self.unit,
            "dp/delta": float(self.delta),
            "dp/max_grad_norm": float(self.max_grad_norm),
            "dp/accountant": self.accountant,
            "dp/target_epsilon": self.target_epsilon,
            "dp/epsilon": max(eps.values()) if eps else 0.0,
            "dp/steps": max((p.steps for p in self.parties.values()), default=0),
        }
        group = []
        for k, party in sorted(self.parties.items()):
            prefix = "dp/" if k == CENTRAL else f"dp/client_{k}/"
            values = {
                "epsilon": eps[k],
                "noise_multiplier": party.noise_multiplier,
                "sample_rate": party.sample_rate,
                "steps": party.steps,
                "units": party.num_units,
            }
            if self.unit == "window" and party.max_windows_per_subject is not None:
                g_eps, g_delta = group_privacy(eps[k], self.delta, party.max_windows_per_subject)
                values.update(
                    group_epsilon=g_eps,
                    group_delta=g_delta,
                    max_windows_per_subject=party.max_windows_per_subject,
                )
                group.append((g_eps, g_delta))
            out.update({prefix + name: _finite(v) for name, v in values.items()})
        if group and len(self.parties) > 1:
            out["dp/group_epsilon"] = _finite(max(g for g, _ in group))
            out["dp/group_delta"] = _finite(max(d for _, d in group))
        out["dp/guarantee"] = self.guarantee(out)
        return out

    def guarantee(self, summary: dict[str, Any]) -> str:
        eps, delta = summary["dp/epsilon"], self.delta
        who = (
            "each client's training data"
            if any(k != CENTRAL for k in self.parties)
            else "the training data"
        )
        if self.unit == "subject":
            return (
                f"({eps:.3g}, {delta:.3g})-DP for {who} with respect to adding or removing all windows of one "
                "subject (subject-level, record = subject)"
            )
        text = (
            f"({eps:.3g}, {delta:.3g})-DP for {who} with respect to adding or removing one window "
            "(window-level); windows of one subject are correlated, so this does not protect a subject"
        )
        g_eps, g_delta = summary.get("dp/group_epsilon"), summary.get("dp/group_delta")
        if g_eps is not None:
            shown = "no guarantee" if g_delta is None or g_delta >= 1 else f"delta {g_delta:.3g}"
            text += f"; group privacy gives a subject epsilon {g_eps:.3g} ({shown})"
        return text

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"parties": {str(k): p.to_dict() for k, p in self.parties.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.parties = {
            int(k): Party.from_dict(v) for k, v in state_dict.get("parties", {}).items()
        }

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.state_file:  # a killed site never leaves half a ledger
            write_json(self.state_file, self.state_dict())

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if self._hooks is not None:
            self._hooks.cleanup()
            self._hooks = None


def convert_task(pl_module: torch.nn.Module) -> None:
    """Replace each network of a task (its direct children with parameters) by its
    DP-ready version (:func:`~lbp_motion.privacy.convert.make_private_model`)."""
    for name, child in list(pl_module.named_children()):
        if any(True for _ in child.parameters()):
            converted = make_private_model(child)
            if converted is not child:
                setattr(pl_module, name, converted)


def _name(key: int) -> str:
    return "the training data" if key == CENTRAL else f"client {key}"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
