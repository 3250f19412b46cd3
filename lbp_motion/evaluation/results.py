"""Run directories, ``metrics.json`` and prediction files (schema: docs/metrics.md).

Every ``lbp fit|validate|test|predict`` run gets its own directory
``<out_dir>/<name>/version_<n>`` holding ``config.yaml``, ``metrics.csv`` (CSV logger),
``wandb/`` (offline W&B run); fit adds ``checkpoints/``; fit, validate and test write
``metrics.json``; testing adds ``confusion_test.png``/``.csv``; ``lbp predict`` writes
``predictions.csv`` and ``recording_predictions.csv`` instead of metrics.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint

from lbp_motion.atomic import write_json
from lbp_motion.trust import load_checkpoint

METRICS_FILE = "metrics.json"
SCHEMA_VERSION = 1


def _version(path: Path) -> int | None:
    number = path.name.split("_", 1)[1] if path.name.startswith("version_") else ""
    return int(number) if number.isdigit() else None


def run_versions(parent: str | Path) -> list[Path]:
    """The run directories ``parent/version_<n>`` of one run name, newest first."""
    versions = [p for p in Path(parent).glob("version_*") if _version(p) is not None]
    return sorted(versions, key=_version, reverse=True)


def last_checkpoint(parent: str | Path) -> Path | None:
    """Where an interrupted fit of the run name ``parent`` goes on from: the
    ``checkpoints/last.ckpt`` of its newest run directory that has one (a resume
    interrupted before its first epoch may leave a newer folder without one); None
    when none has."""
    candidates = (v / "checkpoints" / "last.ckpt" for v in run_versions(parent))
    return next((c for c in candidates if c.is_file()), None)


def make_run_dir(out_dir: str | Path, name: str) -> Path:
    """Create and return ``out_dir/name/version_<n>`` with the next free ``n``.

    ``mkdir`` without ``exist_ok`` makes this safe when several runs start at once.
    """
    parent = Path(out_dir) / name
    parent.mkdir(parents=True, exist_ok=True)
    newest = next(iter(run_versions(parent)), None)
    n = _version(newest) + 1 if newest is not None else 0
    while True:
        run = parent / f"version_{n}"
        try:
            run.mkdir()
            return run
        except FileExistsError:
            n += 1


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    """Read ``run_dir/metrics.json``."""
    with open(Path(run_dir) / METRICS_FILE) as fh:
        return json.load(fh)


def _scalar_metrics(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if key.startswith(prefix):
            v = float(value.item() if isinstance(value, torch.Tensor) else value)
            out[key] = v if math.isfinite(v) else None
    return out


class RunSummary(pl.Callback):
    """Writes ``metrics.json`` into the run directory at the end of each stage.

    * fit: the ``val/*`` metrics of the best checkpoint (they are stored inside each
      checkpoint when it is saved), ``best_checkpoint``, ``best_epoch``, ``monitor``,
      ``final_val/*``: the validation metrics of the last epoch (federated: round), and
      the task's ``recording_rule`` when it has one;
    * validate / test: the ``val/*`` or ``test/*`` metrics, merged into the same file,
      so a fit that tests at its end holds both;
    * ``absent_classes``: ``{split: [class, ...]}`` for the splits of the stage (fit:
      train and val; validate: val; test: test) that have samples but none of some
      class (the DataModule's ``absent_classes``); absent when there are none.

    Args:
        run_dir: where metrics.json goes.
        config_yaml: the run's full config, stored in every checkpoint.
    """

    def __init__(self, run_dir: str | Path, config_yaml: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.config_yaml = config_yaml
        self.summary: dict[str, Any] = {"schema_version": SCHEMA_VERSION}

    def _write(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.run_dir / METRICS_FILE, self.summary)

    def add(self, metrics: dict[str, float]) -> None:
        """Add results computed after a stage (e.g. the per-site test) to metrics.json."""
        self.summary.update(metrics)
        self._write()

    def _note_absent_classes(self, trainer, splits: tuple[str, ...]) -> None:
        absent = getattr(getattr(trainer, "datamodule", None), "absent_classes", None) or {}
        noted = {split: list(absent[split]) for split in splits if absent.get(split)}
        if noted:
            self.summary.setdefault("absent_classes", {}).update(noted)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        info = checkpoint.setdefault("lbp_motion", {})
        info["val_metrics"] = _scalar_metrics(trainer.callback_metrics, "val/")
        info["epoch"] = trainer.current_epoch
        if self.config_yaml is not None:
            info["config"] = self.config_yaml

    def on_fit_end(self, trainer, pl_module) -> None:
        ckpt = trainer.checkpoint_callback
        best = getattr(ckpt, "best_model_path", "") if isinstance(ckpt, ModelCheckpoint) else ""
        if best and Path(best).is_file():
            stored = load_checkpoint(best).get("lbp_motion", {})
            self.summary.update(stored.get("val_metrics", {}))
            self.summary["best_checkpoint"] = str(Path(best).resolve())
            self.summary["best_epoch"] = stored.get("epoch")
            self.summary["monitor"] = ckpt.monitor
        else:
            self.summary.update(_scalar_metrics(trainer.callback_metrics, "val/"))
        # the last epoch's (or federated round's) validation metrics, whichever was best
        self.summary.update(
            {f"final_{k}": v for k, v in _scalar_metrics(trainer.callback_metrics, "val/").items()}
        )
        self.summary["epochs_trained"] = trainer.current_epoch
        rule = getattr(pl_module, "recording_rule", None)
        if isinstance(rule, str):  # how lbp cv pools the windows of a recording too
            self.summary["recording_rule"] = rule
        for callback in trainer.callbacks:  # e.g. DifferentialPrivacy: the dp/* keys
            if callable(getattr(callback, "run_summary", None)):
                self.summary.update(callback.run_summary())
        self._note_absent_classes(trainer, ("train", "val"))
        self._write()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "validate":
            self.summary.update(_scalar_metrics(trainer.callback_metrics, "val/"))
            self._note_absent_classes(trainer, ("val",))
            self._write()

    def on_test_end(self, trainer, pl_module) -> None:
        self.summary.update(_scalar_metrics(trainer.callback_metrics, "test/"))
        self._note_absent_classes(trainer, ("test",))
        self._write()


class PredictionFiles(BasePredictionWriter):
    """Writes ``predictions.csv`` (one row per window) and ``recording_predictions.csv``
    (window probabilities combined per recording by the task's ``recording_rule``,
    default ``mean_prob``: one answer per patient; see
    :func:`~lbp_motion.evaluation.metrics.aggregate_by_recording`).

    Expects ``predict_step`` to return dicts with ``recording`` (B,), ``start`` (B,)
    and ``probs`` (B, C), and optionally ``y`` (B,) (then a ``label`` column holds the
    true class) and ``windows`` (B,): a recording-level task returns one row per
    recording (``start`` 0) and the number of windows it read, written to the
    ``windows`` column instead of the row count. Recording names come from
    ``datamodule.recording_names`` and class names from the task's ``classes``.
    """

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__(write_interval="epoch")
        self.run_dir = Path(run_dir)

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        if not predictions:
            return
        batches = predictions[0] if isinstance(predictions[0], list) else predictions
        rec = torch.cat([b["recording"] for b in batches]).cpu()
        start = torch.cat([b["start"] for b in batches]).cpu()
        probs = torch.cat([b["probs"] for b in batches]).float().cpu()
        labels = (
            torch.cat([b["y"] for b in batches]).cpu() if all("y" in b for b in batches) else None
        )
        names = list(getattr(trainer.datamodule, "recording_names", []))
        classes = list(pl_module.classes)
        name_of = (lambda i: names[i]) if names else str
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "predictions.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            label_col = ["label"] if labels is not None else []
            w.writerow(
                ["recording", "start", "predicted"] + label_col + [f"p_{c}" for c in classes]
            )
            for i, (r, s, p) in enumerate(zip(rec.tolist(), start.tolist(), probs)):
                label = [classes[int(labels[i])]] if labels is not None else []
                w.writerow(
                    [name_of(r), s, classes[int(p.argmax())]]
                    + label
                    + [f"{v:.6f}" for v in p.tolist()]
                )
        from lbp_motion.evaluation.metrics import aggregate_by_recording

        rule = getattr(pl_module, "recording_rule", "mean_prob")
        ids, scores, _ = aggregate_by_recording(
            rec, probs, torch.zeros(len(rec), dtype=torch.long), rule
        )
        if all("windows" in b for b in batches):  # a recording-level task: one row per recording
            windows = dict(
                zip(rec.tolist(), torch.cat([b["windows"] for b in batches]).cpu().tolist())
            )
        else:
            windows = dict(zip(*(t.tolist() for t in torch.unique(rec, return_counts=True))))
        with open(self.run_dir / "recording_predictions.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["recording", "windows", "predicted"] + [f"p_{c}" for c in classes])
            for i, p in zip(ids.tolist(), scores):
                w.writerow(
                    [name_of(i), int(windows[i]), classes[int(p.argmax())]]
                    + [f"{v:.6f}" for v in p.tolist()]
                )
