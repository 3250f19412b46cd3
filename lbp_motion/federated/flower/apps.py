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
W&B loggers; :mod:`.records`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from lbp_motion.atomic import atomic_write
from lbp_motion.errors import ConfigError
from lbp_motion.federated.fedavg import AggregationError
from lbp_motion.federated.flower.messages import (
    ARRAYS,
    CONFIG,
    CONTROL,
    CONTROL_DELTA,
    array_spec,
    arrays_to_state,
    state_to_arrays,
    train_reply_content,
)
from lbp_motion.federated.flower.messages import METRICS as METRICS_KEY
from lbp_motion.federated.flower.records import ServerRecords, append_csv, reply_summary
from lbp_motion.federated.server import scaffold_server_control

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
_INITIAL_LOCAL: dict[str, dict[str, torch.Tensor]] = {}


def _client_experiment(settings: dict[str, Any]):
    """The site's experiment, built once per ClientApp process (and shared by the virtual
    SuperNodes of one simulation worker: it depends on the config and overrides only)."""
    from lbp_motion.federated.flower.experiment import load_experiment

    key = _experiment_key(settings)
    if key not in _EXPERIMENTS:
        experiment = load_experiment(settings.get("config"), settings.get("overrides"))
        state = experiment.task.state_dict()
        _INITIAL_LOCAL[key] = {
            k: state[k].detach().cpu().clone() for k in experiment.federation.local_keys
        }
        _EXPERIMENTS[key] = experiment
    return _EXPERIMENTS[key]


def _experiment_key(settings: dict[str, Any]) -> str:
    return json.dumps([settings.get("config"), settings.get("overrides")])


def _initial_local(settings: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The site's local layers as the config's model starts them (before any round)."""
    return _INITIAL_LOCAL.get(_experiment_key(settings), {})


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


def client_settings(context: Context) -> dict[str, Any]:
    """A site's settings: its SuperNode's ``lbp-client`` file, or under ``lbp federate
    simulate`` the entry of the virtual SuperNode's ``partition-id`` (:mod:`.simulation`)."""
    if CLIENT_KEY in context.node_config:
        return read_settings(context.node_config[CLIENT_KEY])
    from lbp_motion.federated.flower.simulation import simulation_settings

    simulated = simulation_settings()
    if simulated is None or "partition-id" not in context.node_config:
        raise ConfigError(
            f"this SuperNode has no {CLIENT_KEY} node config: start it with lbp federate client"
        )
    return simulated["clients"][int(context.node_config["partition-id"])]


@client_app.train()
def client_train(msg: Message, context: Context) -> Message:
    """One round at a site: local training from the global weights; the reply holds the
    site's weights and scalar metrics only. A failure is answered with an error reply
    whose reason starts with ``lbp client K:`` so that the server names the site."""
    settings = client_settings(context)
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
    from lbp_motion.federated.flower.local import (
        ScaffoldCorrection,
        load_site_state,
        save_site_state,
        train_locally,
    )

    fed = experiment.federation
    global_state = arrays_to_state(msg.content[ARRAYS])
    mismatch = _shape_mismatch(fed.shared(experiment.task.state_dict()), global_state)
    if mismatch:
        raise SiteMismatch(mismatch)
    site_state = load_site_state(work_dir)
    # the site's own layers: from its last round, else the config's initial ones
    local = site_state.get("local") or _initial_local(settings)
    scaffold = None
    if fed.scaffold:  # c from the server, c_i from the site's last round (zeros at first)
        control = arrays_to_state(msg.content[CONTROL])
        own = site_state.get("scaffold") or {k: torch.zeros_like(v) for k, v in control.items()}
        scaffold = ScaffoldCorrection(control, own)
    state, metrics = train_locally(
        experiment,
        {**local, **global_state},
        lbp_round=lbp_round,
        client_id=client_id,
        work_dir=str(work_dir),
        extra_callbacks=(scaffold,) if scaffold else (),
        partitioned=bool(settings.get("partitioned")),
    )
    delta = None
    if fed.local_keys:
        site_state["local"] = {k: state[k] for k in fed.local_keys}
    if scaffold is not None:
        site_state["scaffold"], delta = scaffold.result()
    if fed.local_keys or scaffold is not None:
        save_site_state(work_dir, site_state)
    append_csv(work_dir / "rounds.csv", {"round": lbp_round, **metrics})
    content = train_reply_content(fed.shared(state), metrics, control_delta=delta)
    return Message(content=content, reply_to=msg)


# -- server --------------------------------------------------------------------------------
@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    path = context.run_config.get(SERVER_KEY)
    if not path:  # lbp federate simulate: the simulation's settings name the server's
        from lbp_motion.federated.flower.simulation import simulation_settings

        path = (simulation_settings() or {}).get("server")
    if not path:
        raise ConfigError(f"the run config has no {SERVER_KEY}: start it with lbp federate server")
    run_federation(grid, read_settings(path))


def _save_checkpoint(ckpt: dict[str, Any], path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


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


@dataclass
class ServerStart:
    """Where the server's rounds start: the global state, the rounds already done, their
    rows and the server momentum (all from the checkpoint when resuming)."""

    state: dict[str, torch.Tensor]
    done: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    server_state: dict[str, Any] = field(default_factory=dict)
    control: dict[str, torch.Tensor] | None = None  # SCAFFOLD's c


def server_start(state: dict[str, torch.Tensor], ckpt_path: Path, resume: bool) -> ServerStart:
    """A fresh start from ``state`` (the config's model), or with ``resume`` and a
    checkpoint at ``ckpt_path``, the checkpoint's round, read as data only
    (:func:`load_server_checkpoint`); its model must be the config's."""
    if not (resume and ckpt_path.is_file()):
        return ServerStart(state)
    ckpt = load_server_checkpoint(ckpt_path)
    flower = ckpt["flower"]
    if list(ckpt["state_dict"]) != list(state):
        raise ConfigError(f"{ckpt_path}: the checkpoint's model does not match the config's")
    server_state = flower.get("server")
    if server_state is None:  # a checkpoint of an earlier version: FedAvgM's velocity only
        server_state = {"velocity": flower["velocity"]} if flower.get("velocity") else {}
    start = ServerStart(
        ckpt["state_dict"],
        int(flower["rounds_completed"]),
        list(flower["history"]),
        dict(server_state),
        flower.get("scaffold"),
    )
    print(f"lbp ServerApp: resuming from {ckpt_path} after round {start.done - 1}", flush=True)
    return start


def server_strategy(fed, state: dict[str, torch.Tensor]):
    """The round's strategy: :class:`.strategy.LbpFedAvg` (``inner``, which checks the
    replies), wrapped in Flower's server-side DP when ``flower.dp_noise_multiplier > 0``;
    returns ``(inner, strategy)``."""
    from lbp_motion.federated.flower.strategy import LbpFedAvg

    # server-side DP bounds one site's effect on a plain mean: weighting by n_k would let a
    # large site move the average by more than the noise is calibrated for
    inner = LbpFedAvg(
        state,
        client_fraction=fed.client_fraction,
        min_clients=fed.min_clients,
        seed=fed.seed,
        uniform_weights=fed.flower.dp_noise_multiplier > 0,
        rule=fed.rule,
    )
    strategy = inner
    if fed.flower.dp_noise_multiplier > 0:
        from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping

        strategy = DifferentialPrivacyServerSideFixedClipping(
            inner, fed.flower.dp_noise_multiplier, fed.flower.dp_clipping_norm, fed.min_clients
        )
    return inner, strategy


def run_federation(grid: Grid, settings: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The server's rounds (see the module docstring); returns the final global state."""
    from lbp_motion.federated.flower.experiment import load_experiment

    experiment = load_experiment(settings.get("config"), settings.get("overrides"))
    fed = experiment.federation
    run_dir = Path(settings["run_dir"])
    ckpt_path = run_dir / "checkpoints" / CHECKPOINT
    state = {k: v.detach().cpu().clone() for k, v in experiment.task.state_dict().items()}
    dtypes = {k: v.dtype for k, v in state.items()}
    start = server_start(state, ckpt_path, bool(settings.get("resume")))
    records = ServerRecords(run_dir, experiment, start.history)
    loop = _ServerLoop(grid, experiment, run_dir, records, start, dtypes)
    records.summary("running", start.done)
    for server_round in range(start.done + 1, fed.rounds + 1):
        loop.run_round(server_round)
    records.summary("finished", fed.rounds, {"checkpoint": str(ckpt_path.resolve())})
    records.finish()
    return loop.state


class _ServerLoop:
    """The server's rounds over ``grid`` (:func:`run_federation`): the global state and
    momentum, the strategies, the lbp client id of each node (learnt from its replies)
    and the run's records. :meth:`run_round` does one round."""

    def __init__(
        self,
        grid: Grid,
        experiment,
        run_dir: Path,
        records: ServerRecords,
        start: ServerStart,
        dtypes: dict[str, torch.dtype],
    ) -> None:
        self.grid, self.experiment, self.fed = grid, experiment, experiment.federation
        self.run_dir, self.records, self.dtypes = run_dir, records, dtypes
        self.ckpt_path = run_dir / "checkpoints" / CHECKPOINT
        self.state, self.server_state = start.state, start.server_state
        # the sites' own layers never travel: messages, replies and aggregation hold the rest
        self.inner, self.strategy = server_strategy(self.fed, self.fed.shared(start.state))
        self.known_clients: dict[int, int] = {}  # node id -> lbp client id, learned from replies
        self.nodes_seen: set[int] = set()  # every node connected so far: SCAFFOLD's N
        self.control = start.control
        if self.fed.scaffold:  # SCAFFOLD's c: zeros at first
            if self.control is None:
                params = dict(experiment.task.named_parameters())
                self.control = {
                    k: torch.zeros_like(params[k].detach().cpu()) for k in self.fed.control_keys
                }
            self.inner.control_spec = array_spec(self.control)

    def site(self, node: int) -> str:
        """The node's lbp client id, or ``node:N`` while it has not named one."""
        return str(self.known_clients[node]) if node in self.known_clients else f"node:{node}"

    def run_round(self, server_round: int) -> None:
        """Send the global model to the round's nodes, average the usable replies, record
        the round and save the checkpoint; raise :class:`AggregationError` (after
        recording the failure) with fewer than ``min_clients`` clients or replies."""
        lbp_round = server_round - 1
        started = time.perf_counter()
        self._check_connected(server_round)
        usable, left_out = self._train_round(server_round)
        failed = sorted(left_out)
        for node in failed:
            print(
                f"lbp ServerApp: round {lbp_round}: left out client {self.site(node)} (node {node}): {left_out[node]}",
                flush=True,
            )
        if len(usable) < self.fed.min_clients:
            self.records.summary(
                "failed",
                server_round - 1,
                {"error": f"round {lbp_round}: {len(usable)} usable replies"},
            )
            raise AggregationError(
                f"round {lbp_round}: {len(usable)} client(s) returned usable weights (left out: "
                f"{'; '.join(f'client {self.site(n)}: {left_out[n]}' for n in failed)}); "
                f"at least min_clients={self.fed.min_clients} are needed"
            )
        self._aggregate(server_round, usable)
        row = self._round_row(lbp_round, len(usable), failed, left_out)
        if self.fed.flower.server_validation:
            row.update(_server_validation(self.experiment, self.state, self.run_dir))
        row["round_seconds"] = time.perf_counter() - started
        self._save(server_round, row)
        self.records.round(row, step=lbp_round)
        self.records.summary("running", server_round)
        log.info(
            "round %d: %d clients averaged, %d failed, %.1f s",
            lbp_round,
            len(usable),
            len(failed),
            row["round_seconds"],
        )

    def _check_connected(self, server_round: int) -> None:
        """Wait for the round's nodes (``flower.connect_timeout``); fail below ``min_clients``."""
        fed = self.fed
        wanted = fed.flower.min_available_clients or fed.min_clients
        nodes = _wait_for_nodes(self.grid, wanted, fed.flower.connect_timeout)
        self.nodes_seen.update(nodes)
        if len(nodes) < fed.min_clients:
            self.records.summary(
                "failed", server_round - 1, {"error": f"only {len(nodes)} client(s) connected"}
            )
            raise AggregationError(
                f"round {server_round - 1}: {len(nodes)} client(s) connected within "
                f"{fed.flower.connect_timeout:.0f} s; min_clients={fed.min_clients}"
            )

    def _train_round(self, server_round: int) -> tuple[list[Message], dict[int, str]]:
        """Send the round's messages and sort the replies: the usable ones, and why each
        other sampled node was left out (by node); the replies go to ``replies.jsonl``."""
        messages = list(
            self.strategy.configure_train(
                server_round,
                state_to_arrays(self.fed.shared(self.state)),
                ConfigRecord(),
                self.grid,
            )
        )
        if self.control is not None:
            for message in messages:
                message.content[CONTROL] = state_to_arrays(self.control)
        sampled = [int(m.metadata.dst_node_id) for m in messages]
        replies = list(self.grid.send_and_receive(messages, timeout=self.fed.flower.round_timeout))
        to_node = {
            m.metadata.message_id: int(m.metadata.dst_node_id)
            for m in messages
            if m.metadata.message_id
        }

        def node_of(reply: Message) -> int:  # the node the round's message went to
            return to_node.get(
                reply.metadata.reply_to_message_id or "", int(reply.metadata.src_node_id)
            )

        self.inner.rejected = []
        usable = self.inner.usable_replies(replies)
        usable_ids = {id(m) for m in usable}
        rejected = {id(r["message"]): r["reason"] for r in self.inner.rejected}
        summaries, left_out = [], {}
        for msg in replies:
            node = node_of(msg)
            client = client_of_reply(msg)
            if client is not None:
                self.known_clients[node] = client
            reason = None
            if id(msg) not in usable_ids:
                reason = rejected.get(id(msg), "left out")
                left_out[node] = reason
            summaries.append(
                reply_summary(server_round, msg, node, self.known_clients.get(node), reason)
            )
        answered = {node_of(m) for m in usable}
        for node in sampled:
            if node not in answered and node not in left_out:
                left_out[node] = (
                    f"no reply within flower.round_timeout ({self.fed.flower.round_timeout:.0f} s)"
                )
        self.records.replies(server_round, summaries)
        return usable, left_out

    def _aggregate(self, server_round: int, usable: list[Message]) -> None:
        """The new global state: the strategy's aggregate (clipped, averaged or robust,
        in the model's dtypes), then the server optimiser's step
        (:class:`~lbp_motion.federated.server.ServerRule`, as in the simulation)."""
        shared = self.fed.shared(self.state)
        self.inner.reference = shared
        arrays, _ = self.strategy.aggregate_train(server_round, usable)
        if arrays is None:
            raise AggregationError(
                f"round {server_round - 1}: the server strategy returned no model"
            )
        averaged = {k: v.to(self.dtypes[k]) for k, v in arrays_to_state(arrays).items()}
        stepped, self.server_state = self.fed.rule.step(
            shared, averaged, self.server_state, server_round - 1
        )
        # the sites' local layers stay as the config's model starts them (never sent here)
        self.state = {**self.state, **stepped}
        if self.control is not None:  # c + (1 / N) sum of the sites' control changes
            deltas = [arrays_to_state(m.content[CONTROL_DELTA]) for m in usable]
            sites = max(len(self.nodes_seen), len(usable))
            self.control = scaffold_server_control(self.control, deltas, sites)

    def _round_row(
        self, lbp_round: int, clients: int, failed: list[int], left_out: dict[int, str]
    ) -> dict[str, Any]:
        """The round's row of ``rounds.csv``: who was averaged and who left out (and
        why), each averaged site's metrics, the server-side DP noise."""
        row: dict[str, Any] = {
            "round": lbp_round,
            "clients": clients,
            "failed_clients": len(failed),
            "failed": " ".join(self.site(n) for n in failed),
            "failed_nodes": " ".join(map(str, failed)),
            "left_out": "; ".join(f"client {self.site(n)}: {left_out[n]}" for n in failed),
        }
        norms = self.inner.report.get("update_norms", [])
        if self.fed.rule.clip_norm is not None:
            row["clipped_clients"] = self.inner.report.get("clipped", 0)
        for i, info in enumerate(self.inner.accepted):
            k = int(info.get("client-id", -1))
            row[f"client_{k}/n"] = int(info["num-examples"])
            if i < len(norms):
                row[f"client_{k}/update_norm"] = norms[i]
            for key, value in info.items():
                if key in ("node", "num-examples", "client-id"):
                    continue
                name = "train_loss" if key == "train/loss" else key
                row[f"client_{k}/{name}"] = value
        flower = self.fed.flower
        if flower.dp_noise_multiplier > 0:
            from flwr.supercore.differential_privacy import compute_stdv

            row["server_dp/noise_std"] = compute_stdv(
                flower.dp_noise_multiplier, flower.dp_clipping_norm, self.fed.min_clients
            )
        return row

    def _save(self, server_round: int, row: dict[str, Any]) -> None:
        """The checkpoint of the round (``last.ckpt``, and ``round-NNN.ckpt`` with
        ``flower.keep_round_checkpoints``): the global model, the rounds done, the rows
        and the momentum, for ``--resume`` and ``lbp test --ckpt_path``."""
        lbp_round = server_round - 1
        ckpt = {
            "state_dict": self.state,
            "epoch": lbp_round,
            "global_step": 0,
            "pytorch-lightning_version": _lightning_version(),
            "lbp_motion": {"config": self.experiment.config_yaml, "epoch": lbp_round},
            "flower": {
                "rounds_completed": server_round,
                "history": self.records.history + [row],
                "velocity": self.server_state.get("velocity"),  # the key of earlier versions
                "server": self.server_state,
                "scaffold": self.control,
                "federation": self.fed.to_dict(),
            },
        }
        _save_checkpoint(ckpt, self.ckpt_path)  # the global model and its round, every round
        if self.fed.flower.keep_round_checkpoints:
            _save_checkpoint(ckpt, self.ckpt_path.parent / f"round-{lbp_round:03d}.ckpt")


def _lightning_version() -> str:
    import lightning

    return lightning.__version__
