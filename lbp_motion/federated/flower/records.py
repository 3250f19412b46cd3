"""What a server run records (:func:`.apps.run_federation`): ``rounds.csv``,
``metrics.json``, ``flower/replies.jsonl`` (what every reply held, by name, type, shape
and dtype, never values) and the CSV and W&B loggers, as the simulation does.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

from lbp_motion.atomic import atomic_write, write_json
from lbp_motion.evaluation.results import SCHEMA_VERSION

log = logging.getLogger(__name__)


def append_csv(path: Path, row: dict[str, Any]) -> None:
    """Add ``row`` to the CSV at ``path`` (made if missing; columns as :func:`write_csv`)."""
    rows = []
    if path.is_file():
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    rows.append({k: v for k, v in row.items()})
    write_csv(path, rows)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """``rows`` as a CSV, written atomically: every key of any row, ``round`` first."""
    keys = sorted({k for row in rows for k in row}, key=lambda k: (k != "round", k))

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def reply_summary(
    server_round: int, msg: Message, node: int, client: int | None, left_out: str | None = None
) -> dict[str, Any]:
    """What a reply held, by name, type, shape and dtype (never values): the record of
    what crossed the wire (``flower/replies.jsonl``). ``node`` is the node the round's
    message went to (a reply the SuperLink makes for a lost node comes from node 1),
    ``client`` the site's lbp client id when known; ``left_out`` why it was not averaged."""
    out: dict[str, Any] = {
        "round": server_round - 1,
        "node": node,
        "client": client,
        "error": msg.has_error(),
    }
    if left_out:
        out["left_out"] = left_out
    if msg.has_error():
        out["reason"] = msg.error.reason
        return out
    content: RecordDict = msg.content
    out["records"] = {name: type(rec).__name__ for name, rec in content.items()}
    arrays, metrics, other = {}, {}, {}
    for name, rec in content.items():
        if isinstance(rec, ArrayRecord):
            arrays[name] = {k: [list(a.shape), a.dtype] for k, a in rec.items()}
        elif isinstance(rec, MetricRecord):
            metrics[name] = {k: type(v).__name__ for k, v in rec.items()}
        else:  # e.g. a ConfigRecord: its keys and value types, never its values
            other[name] = {k: type(v).__name__ for k, v in rec.items()}
    out["arrays"] = arrays
    out["metrics"] = metrics
    if other:
        out["other"] = other
    return out


class ServerRecords:
    """rounds.csv, metrics.json, the replies log and the loggers of a server run."""

    def __init__(self, run_dir: Path, experiment, history: list[dict[str, Any]]) -> None:
        self.run_dir = run_dir
        self.history = history
        self.loggers = self._loggers(experiment)
        (run_dir / "flower").mkdir(parents=True, exist_ok=True)

    def _loggers(self, experiment) -> list[Any]:
        from lightning.pytorch.loggers import CSVLogger, WandbLogger

        run = experiment.run
        version = (
            int(self.run_dir.name.split("_")[-1]) if self.run_dir.name.startswith("version_") else 0
        )
        import warnings

        # the run folder already holds the server's files (and, resumed, earlier rounds)
        warnings.filterwarnings(
            "ignore", message="Experiment logs directory .* exists and is not empty"
        )
        loggers: list[Any] = [
            CSVLogger(
                save_dir=str(self.run_dir.parent.parent),
                name=self.run_dir.parent.name,
                version=version,
            )
        ]
        if run.wandb != "disabled":
            try:
                loggers.append(
                    WandbLogger(
                        project=run.wandb_project,
                        name=f"{self.run_dir.parent.name}/{self.run_dir.name}",
                        save_dir=str(self.run_dir),
                        offline=run.wandb == "offline",
                    )
                )
            except Exception as err:  # W&B must never stop a federation
                log.warning("W&B logging is off: %s", err)
        return loggers

    def replies(self, server_round: int, rows: list[dict[str, Any]]) -> None:
        with open(self.run_dir / "flower" / "replies.jsonl", "a") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")

    def round(self, row: dict[str, Any], step: int) -> None:
        self.history.append(row)
        write_csv(self.run_dir / "rounds.csv", self.history)
        numeric = {
            k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        for logger in self.loggers:
            try:
                logger.log_metrics(numeric, step=step)
                logger.save()
            except Exception as err:  # pragma: no cover - a logger's failure is not the run's
                log.warning("logger %s failed: %s", type(logger).__name__, err)

    def summary(self, status: str, rounds: int, extra: dict[str, Any] | None = None) -> None:
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "status": status,
            "rounds_completed": rounds,
            "federation": "flower",
        }
        if self.history:
            last = self.history[-1]
            data.update({f"final_{k}": v for k, v in last.items() if k.startswith("val/")})
            data.update({k: v for k, v in last.items() if k.startswith("val/")})
            eps = [
                v
                for k, v in last.items()
                if k.endswith("/dp/epsilon") and isinstance(v, (int, float))
            ]
            if eps:  # the privacy guarantee of the run is the weakest site's
                data["dp/epsilon"] = max(eps)
                data.update({k: v for k, v in last.items() if k.endswith("/dp/epsilon")})
            if "server_dp/noise_std" in last:
                data["server_dp/noise_std"] = last["server_dp/noise_std"]
        data.update(extra or {})
        write_json(self.run_dir / "metrics.json", data)

    def finish(self) -> None:
        for logger in self.loggers:
            try:
                logger.finalize("success")
            except Exception:  # pragma: no cover
                pass
