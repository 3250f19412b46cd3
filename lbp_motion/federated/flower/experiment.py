"""An ``lbp`` config -> the task, the DataModule and the federation settings of a Flower run.

The Flower apps run exactly the config that ``lbp fit`` runs: the same ``model``,
``data``, ``trainer`` and ``run`` sections, parsed by the same LightningCLI subclass (so
``--config`` files merge and ``--data.root DIR`` style overrides work). The federation
settings are those of the config's FedAvg strategy (``trainer.strategy``: local epochs,
client fraction, minimum clients, seed; ``trainer.max_epochs`` is the number of rounds).
Settings that only a real federation has (timeouts, server-side validation, Flower's
server-side DP) sit in an optional ``flower`` section (:class:`FlowerOptions`), which
``lbp fit`` does not read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lbp_motion import runs
from lbp_motion.errors import ConfigError
from lbp_motion.federated.clients import FederationSpec
from lbp_motion.federated.local_layers import local_state_keys
from lbp_motion.federated.server import ServerRule
from lbp_motion.federated.strategy import FedAvgStrategy


@dataclass
class FlowerOptions:
    """The ``flower`` section of a config: what only a real federation needs.

    Attributes:
        rounds: number of rounds; default: ``trainer.max_epochs`` (as in the simulation).
        round_timeout: seconds the server waits for the replies of a round; clients that
            have not answered by then are left out of it.
        connect_timeout: seconds the server waits, before a round, for
            ``min_available_clients`` clients to be connected.
        min_available_clients: connected clients a round waits for (at most
            ``connect_timeout``) before it starts; default: the strategy's ``min_clients``.
            Set it to the number of sites so that the first round does not start with
            the first site that connects.
        server_validation: validate the global model after every round on the server's
            own validation split (the ``data`` section as the server sees it). Off by
            default: the server holds no patient data.
        dp_noise_multiplier: > 0 wraps the server strategy in Flower's server-side DP
            with fixed clipping (Gaussian noise of std ``dp_noise_multiplier *
            dp_clipping_norm / clients`` on the mean update). It assumes uniform weighting
            of the clients' updates, not the n_k weighting of FedAvg (docs/deploy.md).
        dp_clipping_norm: L2 bound of each client's model update (server-side DP).
        keep_round_checkpoints: keep ``checkpoints/round-NNN.ckpt`` of every round beside
            ``last.ckpt``.
    """

    rounds: int | None = None
    round_timeout: float = 600.0
    connect_timeout: float = 600.0
    min_available_clients: int | None = None
    server_validation: bool = False
    dp_noise_multiplier: float = 0.0
    dp_clipping_norm: float = 1.0
    keep_round_checkpoints: bool = True


@dataclass
class Federation:
    """The federation settings of a run, from the config's FedAvg strategy and ``flower``."""

    rounds: int
    local_epochs: int
    client_fraction: float
    min_clients: int
    seed: int
    flower: FlowerOptions = field(default_factory=FlowerOptions)
    #: clipping, aggregation and server optimiser: the simulation's (``FedAvgStrategy.rule``)
    rule: ServerRule = field(default_factory=ServerRule)
    #: state-dict keys that never leave a site (``local_parameters``, ``fedbn``)
    local_keys: list[str] = field(default_factory=list)
    #: SCAFFOLD: the trainable shared parameters that have control variates (else empty)
    control_keys: list[str] = field(default_factory=list)
    #: the config's client partition (``partition``, ``num_clients``, ``alpha``,
    #: ``subject_groups``): a real site trains on its own data; a virtual SuperNode of
    #: ``lbp federate simulate`` that is not a site takes its part by this partition
    partition: dict[str, Any] = field(default_factory=dict)

    def client_spec(self) -> FederationSpec:
        """The partition as the in-process simulation's :class:`FederationSpec`."""
        return FederationSpec(**self.partition, local_epochs=self.local_epochs, seed=self.seed)

    @property
    def scaffold(self) -> bool:
        return bool(self.control_keys)

    def shared(self, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` without the keys each site keeps for itself (in ``state``'s order)."""
        return {k: v for k, v in state.items() if k not in self.local_keys}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Experiment:
    """What the Flower apps need from an ``lbp`` config."""

    task: Any  # a BaseTask (LightningModule)
    datamodule: Any  # an lbp_motion MotionDataModule
    trainer_kwargs: dict[str, Any]  # the config's Trainer settings without strategy/logger
    callbacks: list[Any]  # the config's callbacks (e.g. differential privacy)
    federation: Federation
    run: Any  # RunOptions
    config_yaml: str
    seed: int


def load_experiment(config: str | Path | None, overrides: list[str] | None = None) -> Experiment:
    """Parse ``--config FILE`` plus command-line style ``overrides`` (e.g.
    ``["--data.root", "/data/site1"]``) like ``lbp fit`` does, and instantiate the task
    and DataModule (the model's initial weights follow ``seed_everything``)."""
    built = runs.build(config or (), args=overrides or (), sections={"flower": FlowerOptions})
    trainer_cfg = dict(built.trainer)
    strategy = trainer_cfg.pop("strategy", None)
    if isinstance(strategy, FedAvgStrategy):
        strategy.validate_options()
        fed = strategy
    elif strategy in (None, "auto"):
        fed = FedAvgStrategy()
    else:
        raise ConfigError(
            "trainer.strategy: lbp federate runs the FedAvg strategy's settings; "
            f"got {type(strategy).__name__}, expected lbp_motion.federated.FedAvgStrategy or none"
        )
    if fed.mu > 0:
        raise ConfigError(
            "trainer.strategy: mu > 0 (FedProx) is not supported by lbp federate yet; set mu: 0"
        )
    for name, value, off in (("finetune_epochs", fed.finetune_epochs, 0),):
        if value != off:
            raise ConfigError(
                f"trainer.strategy: {name}={value} is not supported by lbp federate yet (the "
                f"simulation only); set {name}: {str(off).lower()}"
            )
    flower = built.sections["flower"]
    if not isinstance(flower, FlowerOptions):
        flower = FlowerOptions(**dict(flower or {}))
    max_epochs = trainer_cfg.get("max_epochs")
    rounds = (
        flower.rounds
        if flower.rounds is not None
        else (max_epochs if max_epochs not in (None, -1) else 1)
    )
    if rounds < 1:
        raise ConfigError(f"flower.rounds={rounds}; expected at least 1")
    if flower.min_available_clients is not None and flower.min_available_clients < fed.min_clients:
        raise ConfigError(
            f"flower.min_available_clients={flower.min_available_clients}; expected at least "
            f"trainer.strategy.init_args.min_clients={fed.min_clients}"
        )
    if flower.round_timeout <= 0 or flower.connect_timeout <= 0:
        raise ConfigError("flower: round_timeout and connect_timeout must be positive")
    if fed.scaffold and flower.dp_noise_multiplier > 0:
        raise ConfigError(
            "trainer.strategy.init_args.scaffold: true does not combine with the server's "
            "differential privacy (flower.dp_noise_multiplier > 0: the control variates are not "
            "clipped or noised); set one of them off"
        )
    local_keys = sorted(local_state_keys(built.task, fed.local_parameters, fed.fedbn))
    federation = Federation(
        rounds=int(rounds),
        local_epochs=fed.spec.local_epochs,
        client_fraction=fed.spec.client_fraction,
        min_clients=fed.min_clients,
        seed=fed.spec.seed,
        flower=flower,
        rule=fed.rule,
        local_keys=local_keys,
        control_keys=[
            name
            for name, p in built.task.named_parameters()
            if fed.scaffold and p.requires_grad and name not in local_keys
        ],
        partition={
            "partition": fed.spec.partition,
            "num_clients": fed.spec.num_clients,
            "alpha": fed.spec.alpha,
            "subject_groups": fed.spec.subject_groups,
        },
    )
    trainer_cfg.pop("callbacks", None)  # in built.callbacks with the top-level ones
    for key in (
        "logger",
        "max_epochs",
        "min_epochs",
        "max_steps",
        "max_time",
        "enable_checkpointing",
        "default_root_dir",
    ):
        trainer_cfg.pop(key, None)
    return Experiment(
        task=built.task,
        datamodule=built.datamodule,
        trainer_kwargs=trainer_cfg,
        callbacks=built.callbacks,
        federation=federation,
        run=built.run,
        config_yaml=_lbp_config_yaml(built.config_yaml),
        seed=built.seed,
    )


def _lbp_config_yaml(dumped: str) -> str:
    """The config as ``lbp fit`` knows it (without the ``flower`` section), so that a
    checkpoint of the federation works with ``lbp test --ckpt_path``."""
    import yaml

    config = yaml.safe_load(dumped)
    config.pop("flower", None)
    return yaml.safe_dump(config, sort_keys=False)
