"""Results per clinic (site): a model's metrics on each site's own held-out subjects.

A pooled test accuracy hides a clinic the model fails. When the DataModule knows each
recording's site (``split_by_site``, e.g. :class:`~lbp_motion.datamodules.tug.TUGDataModule`
with a ``site`` column), every run's test is followed by one per site:
``test/site/<site>/<metric>`` in metrics.json and a row in ``sites.csv``. Federated
runs with local layers or fine-tuning add their personalised models' rows
(:mod:`lbp_motion.federated.personalise`).

The metrics are the window and recording metrics of :mod:`lbp_motion.evaluation.metrics`
on the probabilities of the task's ``predict_step`` (``probs``, ``y``, ``recording``),
computed by a plain Lightning ``Trainer.predict`` on a copy of the model; a task whose
predictions have no class probabilities has no per-site results.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from lbp_motion.atomic import write_text
from lbp_motion.evaluation.metrics import (
    classification_metrics,
    flatten_metrics,
    recording_metrics,
)

#: the columns of ``sites.csv`` after site and model (metric names without the stage)
SITE_COLUMNS = ("accuracy", "f1_macro", "mcc", "recording_accuracy", "recording_mcc")
SITES_FILE = "sites.csv"


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Lightning's info lines (devices, "max_epochs reached") held back: the short
    runs after a test would repeat them once per site."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def quiet_trainer(module: torch.nn.Module, **kwargs: Any) -> pl.Trainer:
    """A Trainer without logger, checkpoints, progress bar or callbacks, on the device
    of ``module`` (one device): for the short runs after a test."""
    device = next(module.parameters()).device
    return pl.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[],
        **kwargs,
    )


def detached_copy(module: pl.LightningModule) -> pl.LightningModule:
    """A deep copy of ``module``'s networks and state without its Trainer, sharing its
    plain callables (the config's model and optimiser factories): neither is needed by
    the copy, and what they reach (e.g. Opacus's DP optimiser, which a fit under
    differential privacy leaves behind) cannot always be copied."""
    trainer, module._trainer = module._trainer, None
    shared = {
        id(v): v
        for v in module.__dict__.values()
        if callable(v) and not isinstance(v, (torch.nn.Module, torch.Tensor))
    }
    try:
        return copy.deepcopy(module, memo=shared)
    finally:
        module._trainer = trainer


def predict_outputs(
    module: pl.LightningModule, dataset: torch.utils.data.Dataset, batch_size: int
) -> dict[str, torch.Tensor] | None:
    """``recording``, ``probs`` and ``y`` of ``module``'s ``predict_step`` over
    ``dataset`` (a copy of the module runs, so the caller's Trainer stays attached);
    None when its predictions have no ``probs`` and ``y``."""
    if len(dataset) == 0:
        return None
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    with quiet_logs():
        batches = quiet_trainer(module).predict(detached_copy(module), dataloaders=loader)
    if not batches or not all(isinstance(b, dict) and {"probs", "y"} <= set(b) for b in batches):
        return None
    return {k: torch.cat([b[k].cpu() for b in batches]) for k in ("recording", "probs", "y")}


def prediction_metrics(
    outputs: dict[str, torch.Tensor], classes: Sequence[str], prefix: str, rule: str = "mean_prob"
) -> dict[str, float]:
    """Window metrics (:func:`classification_metrics`, per class too) and recording metrics
    (windows combined by ``rule``) of ``outputs``, named ``<prefix>/<metric>``."""
    metrics = classification_metrics(len(classes))
    metrics.update(outputs["probs"], outputs["y"])
    values = flatten_metrics(metrics.compute(), classes, prefix)
    values.update(
        recording_metrics(outputs["recording"], outputs["probs"], outputs["y"], prefix, rule)
    )
    return {k: float(v) for k, v in values.items()}


def concat_outputs(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The outputs of several disjoint test sets as one."""
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def site_row(
    site: str, model: str, outputs: dict[str, torch.Tensor], metrics: dict[str, float], prefix: str
) -> dict[str, Any]:
    """One row of ``sites.csv``."""
    row: dict[str, Any] = {
        "site": site,
        "model": model,
        "windows": len(outputs["y"]),
        "recordings": len(torch.unique(outputs["recording"])),
    }
    row.update({c: round(metrics[f"{prefix}/{c}"], 6) for c in SITE_COLUMNS})
    return row


def write_site_table(run_dir: str | Path, rows: list[dict[str, Any]]) -> Path:
    """``sites.csv`` (written atomically): one row per site and model."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=["site", "model", "windows", "recordings", *SITE_COLUMNS]
    )
    writer.writeheader()
    writer.writerows(rows)
    return write_text(Path(run_dir) / SITES_FILE, buffer.getvalue())


def evaluate_by_site(
    module: pl.LightningModule,
    tests: dict[str, torch.utils.data.Dataset],
    classes: Sequence[str],
    batch_size: int,
    rule: str = "mean_prob",
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """``module``'s metrics on each site's test set: ``test/site/<site>/...`` and the
    ``sites.csv`` rows (model ``global``)."""
    metrics: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    for site, dataset in tests.items():
        tested = test_on_site(
            module, dataset, site, "global", "test/site", classes, batch_size, rule
        )
        if tested is not None:
            metrics.update(tested.metrics)
            rows.append(tested.row)
    return metrics, rows


@dataclass
class SiteTest:
    """One model tested on one site: its outputs, metrics and ``sites.csv`` row."""

    outputs: dict[str, torch.Tensor]
    metrics: dict[str, float]
    row: dict[str, Any]


def test_on_site(
    module: pl.LightningModule,
    dataset: torch.utils.data.Dataset,
    site: str,
    model: str,
    prefix: str,
    classes: Sequence[str],
    batch_size: int,
    rule: str = "mean_prob",
) -> SiteTest | None:
    """``module`` on ``site``'s test set ``dataset``: metrics named
    ``<prefix>/<site>/<metric>`` and the row of model ``model``; None when its
    predictions have no class probabilities."""
    outputs = predict_outputs(module, dataset, batch_size)
    if outputs is None:
        return None
    name = f"{prefix}/{site}"
    values = prediction_metrics(outputs, classes, name, rule)
    return SiteTest(outputs, values, site_row(site, model, outputs, values, name))


test_on_site.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported
