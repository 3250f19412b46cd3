"""The Flower apps: ``server_app`` (a ServerApp) and ``client_app`` (a ClientApp).

Both are built from an ``lbp`` config. Flower's SuperLink runs the ServerApp and each
site's SuperNode runs the ClientApp (``lbp federate server`` / ``lbp federate client``
start them; ``flwr run`` does the same by hand, docs/deploy.md). What they need to find
their config reaches them as a small JSON settings file:

* the server's through the run config key ``lbp-server`` (``flwr run --run-config``):
  ``{"config": FILE, "overrides": [...], "run_dir": DIR, "resume": bool}``;
* a site's through its SuperNode's node config key ``lbp-client``
  (``flower-supernode --node-config``): ``{"config": FILE, "overrides": [...],
  "client_id": K, "work_dir": DIR}``.

The server loop (:func:`run_federation`) is lbp's own rather than
``Strategy.start``: it resumes from the last checkpoint at the next round, checks every
reply, and records rounds like the simulation (``rounds.csv``, ``metrics.json``, CSV and
W&B loggers).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from lbp_motion.atomic import atomic_write, write_json
from lbp_motion.errors import ConfigError
from lbp_motion.evaluation.results import SCHEMA_VERSION
from lbp_motion.federated.fedavg import AggregationError, server_momentum_update
from lbp_motion.federated.flower.messages import (
    ARRAYS,
    CONFIG,
    arrays_to_state,
    state_to_arrays,
    train_reply_content,
)
from lbp_motion.federated.flower.messages import METRICS as METRICS_KEY

log = logging.getLogger(__name__)

SERVER_KEY = "lbp-server"
CLIENT_KEY = "lbp-client"
CHECKPOINT = "last.ckpt"

server_app = ServerApp()
client_app = ClientApp()


def read_settings(path: str | os.PathLike) -> dict[str, Any]:
    with open(path) as fh:
        return json.load(fh)


# -- client --------------------------------------------------------------------------------
_EXPERIMENTS: dict[str, Any] = {}


def _client_experiment(settings: dict[str, Any]):
    """The site's experiment, built once per ClientApp process."""
    from lbp_motion.federated.flower.experiment import load_experiment

    key = json.dumps(settings, sort_keys=True)
    if key not in _EXPERIMENTS:
        _EXPERIMENTS[key] = load_experiment(settings.get("config"), settings.get("overrides"))
    return _EXPERIMENTS[key]


CLIENT_ERROR_PREFIX = "lbp client "


def _shape_mismatch(
    task_state: dict[str, torch.Tensor], global_state: dict[str, torch.Tensor]
) -> str | None:
    """Why the global weights do not fit this site's model (another config), or None."""
    if list(task_state) != list(global_state):
        extra = sorted(set(global_state) - set(task_state))[:3]
        missing = sorted(set(task_state) - set(global_state))[:3]
        return f"the global model's parameters differ from this site's model (extra {extra}, missing {missing})"
    for key, value in task_state.items():
        if tuple(value.shape) != tuple(global_state[key].shape):
            return (
                f"shape mismatch: {key} is {tuple(global_state[key].shape)} in the global model and "
                f"{tuple(value.shape)} here (does this site's config differ, e.g. d_model?)"
            )
    return None


@client_app.train()
def client_train(msg: Message, context: Context) -> Message:
    """One round at a site: local training from the global weights; the reply holds the
    site's weights and scalar metrics only. A failure is answered with an error reply
    whose reason starts with ``lbp client K:`` so that the server names the site."""
    settings = read_settings(context.node_config[CLIENT_KEY])
    client_id = int(settings.get("client_id", 0))
    try:
        return _client_round(msg, settings, client_id)
    except Exception as err:  # the server must learn which site failed, and why
        from flwr.app import Error

        reason = f"{CLIENT_ERROR_PREFIX}{client_id}: {type(err).__name__}: {err}".splitlines()[0][
            :500
        ]
        if isinstance(err, SiteMismatch):
            reason = f"{CLIENT_ERROR_PREFIX}{client_id}: {err}"
        log.error(reason)
        return Message(Error(code=1, reason=reason), reply_to=msg)


class SiteMismatch(ConfigError):
    """The global model does not fit this site's model."""


def _client_round(msg: Message, settings: dict[str, Any], client_id: int) -> Message:
    work_dir = Path(settings["work_dir"])
    work_dir.mkdir(parents=True, exist_ok=True)
    lbp_round = int(msg.content[CONFIG]["lbp-round"])
    (work_dir / f"round-{lbp_round:03d}.started").touch()  # progress marker (tests, operators)
    experiment = _client_experiment(settings)
    from lbp_motion.federated.flower.local import train_locally

    global_state = arrays_to_state(msg.content[ARRAYS])
    mismatch = _shape_mismatch(experiment.task.state_dict(), global_state)
    if mismatch:
        raise SiteMismatch(mismatch)
    state, metrics = train_locally(
        experiment,
        global_state,
        lbp_round=lbp_round,
        client_id=client_id,
        work_dir=str(work_dir),
    )
    _append_csv(work_dir / "rounds.csv", {"round": lbp_round, **metrics})
    return Message(content=train_reply_content(state, metrics), reply_to=msg)


# -- server --------------------------------------------------------------------------------
@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    settings = read_settings(context.run_config[SERVER_KEY])
    run_federation(grid, settings)


def _save_checkpoint(ckpt: dict[str, Any], path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    rows = []
    if path.is_file():
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    rows.append({k: v for k, v in row.items()})
    _write_csv(path, rows)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys = sorted({k for row in rows for k in row}, key=lambda k: (k != "round", k))

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def client_of_reply(msg: Message) -> int | None:
    """The lbp client id a reply names: its ``client-id`` metric, or the ``lbp client K:``
    prefix of an error reply's reason; None when it names none."""
    if msg.has_error():
        reason = msg.error.reason or ""
        if reason.startswith(CLIENT_ERROR_PREFIX):
            head = reason[len(CLIENT_ERROR_PREFIX) :].split(":", 1)[0]
            return int(head) if head.isdigit() else None
        return None
    try:
        value = msg.content[METRICS_KEY].get("client-id")
    except (KeyError, AttributeError):
        return None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _reply_summary(
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


class _ServerRecords:
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
        _write_csv(self.run_dir / "rounds.csv", self.history)
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


def _wait_for_nodes(grid: Grid, count: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(int(n) for n in grid.get_node_ids())
        if len(nodes) >= count or time.monotonic() > deadline:
            return nodes
        time.sleep(1.0)


def _server_validation(
    experiment, state: dict[str, torch.Tensor], run_dir: Path
) -> dict[str, float]:
    import lightning.pytorch as pl

    from lbp_motion.federated.flower.messages import scalar_metrics

    task, dm = experiment.task, experiment.datamodule
    task.load_state_dict(state)
    kwargs = dict(experiment.trainer_kwargs)
    kwargs.update(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(run_dir),
    )
    trainer = pl.Trainer(**kwargs)
    trainer.validate(task, datamodule=dm, verbose=False)
    return {
        k: v for k, v in scalar_metrics(trainer.callback_metrics).items() if k.startswith("val/")
    }


def load_server_checkpoint(path: Path) -> dict[str, Any]:
    """The server's checkpoint, read as tensors and plain data only (no code runs)."""
    from lbp_motion.trust import load_checkpoint

    return load_checkpoint(path)


def run_federation(grid: Grid, settings: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The server's rounds (see the module docstring); returns the final global state."""
    from lbp_motion.federated.flower.experiment import load_experiment
    from lbp_motion.federated.flower.strategy import LbpFedAvg

    experiment = load_experiment(settings.get("config"), settings.get("overrides"))
    fed = experiment.federation
    run_dir = Path(settings["run_dir"])
    ckpt_path = run_dir / "checkpoints" / CHECKPOINT
    state = {k: v.detach().cpu().clone() for k, v in experiment.task.state_dict().items()}
    dtypes = {k: v.dtype for k, v in state.items()}
    done, history, velocity = 0, [], None
    if settings.get("resume") and ckpt_path.is_file():
        ckpt = load_server_checkpoint(ckpt_path)
        flower = ckpt["flower"]
        if list(ckpt["state_dict"]) != list(state):
            raise ConfigError(f"{ckpt_path}: the checkpoint's model does not match the config's")
        state, done, history, velocity = (
            ckpt["state_dict"],
            int(flower["rounds_completed"]),
            list(flower["history"]),
            flower.get("velocity"),
        )
        print(f"lbp ServerApp: resuming from {ckpt_path} after round {done - 1}", flush=True)
    records = _ServerRecords(run_dir, experiment, history)
    # server-side DP bounds one site's effect on a plain mean: weighting by n_k would let a
    # large site move the average by more than the noise is calibrated for
    inner = LbpFedAvg(
        state,
        client_fraction=fed.client_fraction,
        min_clients=fed.min_clients,
        seed=fed.seed,
        uniform_weights=fed.flower.dp_noise_multiplier > 0,
    )
    strategy = inner
    if fed.flower.dp_noise_multiplier > 0:
        from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping

        strategy = DifferentialPrivacyServerSideFixedClipping(
            inner, fed.flower.dp_noise_multiplier, fed.flower.dp_clipping_norm, fed.min_clients
        )
    records.summary("running", done)
    known_clients: dict[int, int] = {}  # node id -> lbp client id, learned from replies
    for server_round in range(done + 1, fed.rounds + 1):
        lbp_round = server_round - 1
        started = time.perf_counter()
        wanted = fed.flower.min_available_clients or fed.min_clients
        nodes = _wait_for_nodes(grid, wanted, fed.flower.connect_timeout)
        if len(nodes) < fed.min_clients:
            records.summary(
                "failed", server_round - 1, {"error": f"only {len(nodes)} client(s) connected"}
            )
            raise AggregationError(
                f"round {lbp_round}: {len(nodes)} client(s) connected within "
                f"{fed.flower.connect_timeout:.0f} s; min_clients={fed.min_clients}"
            )
        messages = list(
            strategy.configure_train(server_round, state_to_arrays(state), ConfigRecord(), grid)
        )
        sampled = [int(m.metadata.dst_node_id) for m in messages]
        replies = list(grid.send_and_receive(messages, timeout=fed.flower.round_timeout))
        to_node = {
            m.metadata.message_id: int(m.metadata.dst_node_id)
            for m in messages
            if m.metadata.message_id
        }

        def node_of(reply: Message, to_node=to_node) -> int:  # the node the round's message went to
            return to_node.get(
                reply.metadata.reply_to_message_id or "", int(reply.metadata.src_node_id)
            )

        inner.rejected = []
        usable = inner.usable_replies(replies)
        usable_ids = {id(m) for m in usable}
        rejected = {id(r["message"]): r["reason"] for r in inner.rejected}
        summaries, left_out = [], {}
        for msg in replies:
            node = node_of(msg)
            client = client_of_reply(msg)
            if client is not None:
                known_clients[node] = client
            reason = None
            if id(msg) not in usable_ids:
                reason = rejected.get(id(msg), "left out")
                left_out[node] = reason
            summaries.append(
                _reply_summary(server_round, msg, node, known_clients.get(node), reason)
            )
        answered = {node_of(m) for m in usable}
        for node in sampled:
            if node not in answered and node not in left_out:
                left_out[node] = (
                    f"no reply within flower.round_timeout ({fed.flower.round_timeout:.0f} s)"
                )
        records.replies(server_round, summaries)
        failed = sorted(left_out)

        def site(node: int, known_clients=known_clients) -> str:
            return str(known_clients[node]) if node in known_clients else f"node:{node}"

        for node in failed:
            print(
                f"lbp ServerApp: round {lbp_round}: left out client {site(node)} (node {node}): {left_out[node]}",
                flush=True,
            )
        if len(usable) < fed.min_clients:
            records.summary(
                "failed",
                server_round - 1,
                {"error": f"round {lbp_round}: {len(usable)} usable replies"},
            )
            raise AggregationError(
                f"round {lbp_round}: {len(usable)} client(s) returned usable weights (left out: "
                f"{'; '.join(f'client {site(n)}: {left_out[n]}' for n in failed)}); "
                f"at least min_clients={fed.min_clients} are needed"
            )
        arrays, _ = strategy.aggregate_train(server_round, usable)
        if arrays is None:
            raise AggregationError(f"round {lbp_round}: the server strategy returned no model")
        averaged = {k: v.to(dtypes[k]) for k, v in arrays_to_state(arrays).items()}
        if fed.server_momentum > 0 or fed.server_lr != 1.0:
            averaged, velocity = server_momentum_update(
                state, averaged, velocity, momentum=fed.server_momentum, server_lr=fed.server_lr
            )
        state = averaged
        row: dict[str, Any] = {
            "round": lbp_round,
            "clients": len(usable),
            "failed_clients": len(failed),
            "failed": " ".join(site(n) for n in failed),
            "failed_nodes": " ".join(map(str, failed)),
            "left_out": "; ".join(f"client {site(n)}: {left_out[n]}" for n in failed),
        }
        for info in inner.accepted:
            k = int(info.get("client-id", -1))
            row[f"client_{k}/n"] = int(info["num-examples"])
            for key, value in info.items():
                if key in ("node", "num-examples", "client-id"):
                    continue
                name = "train_loss" if key == "train/loss" else key
                row[f"client_{k}/{name}"] = value
        if fed.flower.dp_noise_multiplier > 0:
            from flwr.supercore.differential_privacy import compute_stdv

            row["server_dp/noise_std"] = compute_stdv(
                fed.flower.dp_noise_multiplier, fed.flower.dp_clipping_norm, fed.min_clients
            )
        if fed.flower.server_validation:
            row.update(_server_validation(experiment, state, run_dir))
        row["round_seconds"] = time.perf_counter() - started
        ckpt = {
            "state_dict": state,
            "epoch": lbp_round,
            "global_step": 0,
            "pytorch-lightning_version": _lightning_version(),
            "lbp_motion": {"config": experiment.config_yaml, "epoch": lbp_round},
            "flower": {
                "rounds_completed": server_round,
                "history": records.history + [row],
                "velocity": velocity,
                "federation": fed.to_dict(),
            },
        }
        _save_checkpoint(ckpt, ckpt_path)  # the global model and its round, every round
        if fed.flower.keep_round_checkpoints:
            _save_checkpoint(ckpt, ckpt_path.parent / f"round-{lbp_round:03d}.ckpt")
        records.round(row, step=lbp_round)
        records.summary("running", server_round)
        log.info(
            "round %d: %d clients averaged, %d failed, %.1f s",
            lbp_round,
            len(usable),
            len(failed),
            row["round_seconds"],
        )
    records.summary("finished", fed.rounds, {"checkpoint": str(ckpt_path.resolve())})
    records.finish()
    return state


def _lightning_version() -> str:
    import lightning

    return lightning.__version__
