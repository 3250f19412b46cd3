"""Personalised models of a federation, tested on each clinic's own held-out subjects.

After a federated fit, clinic k's personalised model is the tested global model with
client k's own local layers (``local_parameters``, ``fedbn``) and, with
``finetune_epochs: E_ft``, E_ft further epochs of training on the clinic's own data
(a fresh optimiser from the task's ``configure_optimizers``, seeded by (seed, client)).
Each is tested on the held-out subjects of its clinic's site, beside the global model
on the same subjects (:mod:`lbp_motion.evaluation.sites`): rows ``personalised`` in
``sites.csv`` and ``test/personalised/...`` in metrics.json, pooled over the clinics
(every held-out subject answered by its own clinic's model) and per site.

Only a partition that gives each client the subjects of one site (``partition: site``)
has a clinic to test each personalised model on; otherwise there are no personalised
results (logged).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from lbp_motion.evaluation.sites import (
    concat_outputs,
    detached_copy,
    prediction_metrics,
    quiet_logs,
    quiet_trainer,
    test_on_site,
)
from lbp_motion.federated.clients import mix_seed
from lbp_motion.federated.strategy import FedAvgStrategy
from lbp_motion.trust import load_checkpoint

log = logging.getLogger(__name__)

PREFIX = "test/personalised"


def client_sites(client_subjects: list[list[str]], subject_site: dict[str, str]) -> dict[int, str]:
    """Each client whose subjects all belong to one site, with that site."""
    out = {}
    for client, subjects in enumerate(client_subjects):
        sites = {subject_site.get(s) for s in subjects}
        if len(sites) == 1 and None not in sites:
            out[client] = sites.pop()
    return out


def checkpoint_local_states(
    strategy: FedAvgStrategy, ckpt_path: str | Path | None
) -> dict[int, dict[str, torch.Tensor]]:
    """Each client's local layers as stored with the tested checkpoint (the strategy's
    own after the last round when none was given)."""
    if not ckpt_path:
        return strategy.local_states
    state = load_checkpoint(ckpt_path).get("callbacks", {}).get("FedAvgStrategy", {})
    return dict(state.get("local_states") or {})


def finetune(
    module: pl.LightningModule,
    dataset: torch.utils.data.Dataset,
    epochs: int,
    batch_size: int,
    seed: int,
) -> pl.LightningModule:
    """``module`` trained ``epochs`` more epochs on ``dataset`` alone (in place)."""
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    with quiet_logs(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")  # none, on purpose
        trainer = quiet_trainer(
            module, max_epochs=epochs, limit_val_batches=0, num_sanity_val_steps=0
        )
        trainer.fit(module, train_dataloaders=loader)
    return module


def personalised_results(
    strategy: FedAvgStrategy,
    module: pl.LightningModule,
    datamodule: Any,
    tests: dict[str, torch.utils.data.Dataset],
    classes: Sequence[str],
    rule: str,
    ckpt_path: str | Path | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The personalised model of every client that is one site, tested on that site's
    held-out subjects: ``test/personalised/...`` (pooled over sites and per site) and
    the ``sites.csv`` rows (model ``personalised``). Empty when the federation keeps
    nothing local and does not fine-tune, or no client is one site."""
    if not strategy.personalises:
        return {}, []
    clients = strategy.client_data(datamodule)
    sites = client_sites(clients.subjects, strategy.subject_sites)
    if not sites:
        log.info("personalised results need clients that are one site each (partition: site)")
        return {}, []
    local_states = checkpoint_local_states(strategy, ckpt_path)
    batch_size = int(getattr(datamodule, "batch_size", 64))
    metrics: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    pooled = []
    for client, site in sorted(sites.items(), key=lambda item: item[1]):
        if site not in tests:
            continue
        personal = detached_copy(module)
        if client in local_states:
            personal.load_state_dict(local_states[client], strict=False)
        if strategy.finetune_epochs > 0:
            seed = mix_seed(strategy.spec.seed, client, 0, 7919)
            finetune(personal, clients.datasets[client], strategy.finetune_epochs, batch_size, seed)
        tested = test_on_site(
            personal, tests[site], site, "personalised", f"{PREFIX}/site", classes, batch_size, rule
        )
        if tested is None:
            continue
        metrics.update(tested.metrics)
        rows.append(tested.row)
        pooled.append(tested.outputs)
    if pooled:
        metrics.update(prediction_metrics(concat_outputs(pooled), classes, PREFIX, rule))
    return metrics, rows
