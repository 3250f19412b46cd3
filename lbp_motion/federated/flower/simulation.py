"""``lbp federate simulate``: the Flower apps under Flower's simulation engine (Ray).

The same ServerApp and ClientApp as ``lbp federate server`` / ``client``
(:mod:`.apps`), run by ``flwr.simulation.run_simulation`` with ``K`` virtual SuperNodes
in Ray workers: no sockets, certificates or SuperLink. With the config's ``partition:
site``, each virtual SuperNode is one site of the data (the config's ``data`` holds
every site, labels.csv's ``site`` column): node ``partition-id`` k trains on the k-th
site in sorted order, as client k of the in-process simulation and site k of a real
federation do. With ``iid``, ``dirichlet`` or ``groups``, node k reads the whole data
and trains on client k's part of it, split exactly as the in-process simulation splits
it (so a study of hundreds of clients needs no sites in the data). Either way the same
config and seed give the in-process simulation's global model.

What each app reads reaches it as in a deployment, through a settings file
(:func:`write_simulation_settings`): the ServerApp's ``lbp-server`` settings and one
``lbp-client`` settings entry per site (its ``--data.train_sites``, client id and work
folder), found through the ``LBP_FLOWER_SIMULATION`` environment variable, which the
Ray workers inherit. Client resources (CPUs, fractional GPUs) are Ray's: a client with
``num_gpus: 0.25`` shares a GPU with three others; on a Ray cluster, ``RAY_ADDRESS``
points the engine at it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lbp_motion.errors import ConfigError, LbpError

#: the environment variable that names the simulation's settings file
SIMULATION_ENV = "LBP_FLOWER_SIMULATION"


class SimulationError(LbpError):
    """The simulated federation did not finish."""


def training_sites(datamodule: Any) -> list[str]:
    """The sites of the DataModule's training subjects, sorted (client k = site k)."""
    datamodule.setup("fit")
    info = datamodule.train_subject_info() if hasattr(datamodule, "train_subject_info") else None
    sites = None if info is None else info.get("site")
    if not sites:
        raise ConfigError(
            f"lbp federate simulate: {type(datamodule).__name__} gives no site of its training "
            "subjects, and the config's partition is 'site' (labels.csv needs a 'site' column)"
        )
    return sorted({str(s) for s in sites})


def simulated_clients(experiment: Any) -> list[str]:
    """The virtual SuperNodes' names: the training sites with ``partition: site``, else
    ``client<k>`` for each client of the config's partition."""
    if experiment.federation.partition.get("partition", "site") == "site":
        return training_sites(experiment.datamodule)
    from lbp_motion.federated.strategy import FedAvgStrategy

    strategy = FedAvgStrategy(**experiment.federation.partition, seed=experiment.federation.seed)
    experiment.datamodule.setup("fit")
    return [f"client{k}" for k in range(len(strategy.client_data(experiment.datamodule).datasets))]


def write_simulation_settings(
    run_dir: Path,
    server_settings: Path,
    config: str,
    overrides: list[str],
    names: list[str],
    by_site: bool = True,
) -> Path:
    """``<run>/flower/simulation.json``: the server's settings file and each virtual
    SuperNode's client settings: what ``lbp federate client`` would write at that site
    (``by_site``), or client k's part of the config's partition."""
    clients = [
        {
            "config": config,
            "client_id": k,
            "work_dir": str(run_dir / "flower" / "sites" / name),
            "overrides": [*overrides, "--data.train_sites", f"[{name}]"] if by_site else overrides,
            "partitioned": not by_site,
        }
        for k, name in enumerate(names)
    ]
    path = run_dir / "flower" / "simulation.json"
    path.write_text(json.dumps({"server": str(server_settings), "clients": clients}, indent=2))
    return path


def simulation_settings() -> dict[str, Any] | None:
    """The settings of the running simulation (None outside one)."""
    path = os.environ.get(SIMULATION_ENV)
    if not path:
        return None
    with open(path) as fh:
        return json.load(fh)


def backend_config(client_cpus: float, client_gpus: float) -> dict[str, Any]:
    """Flower's backend configuration: each ClientApp's Ray resources."""
    if client_cpus <= 0 or client_gpus < 0:
        raise ConfigError(
            f"--client_cpus {client_cpus} --client_gpus {client_gpus}: expected CPUs > 0 and GPUs >= 0"
        )
    return {"client_resources": {"num_cpus": client_cpus, "num_gpus": client_gpus}}


def run_simulation(
    config: str,
    overrides: list[str],
    num_supernodes: int,
    client_cpus: float = 1.0,
    client_gpus: float = 0.0,
) -> Path:
    """Run the federation of ``config`` with ``num_supernodes`` virtual SuperNodes;
    returns the run folder (``rounds.csv``, ``metrics.json``, checkpoints, as ``lbp
    federate server`` writes them)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError(
            'lbp federate simulate needs Flower\'s simulation engine: pip install "lbp-motion[fl]" '
            "(flwr[simulation], with Ray)"
        )
    from flwr.simulation import run_simulation as flower_run_simulation

    from lbp_motion.federated.flower.apps import client_app, server_app
    from lbp_motion.federated.flower.deploy import _server_run_dir, _status, write_server_settings
    from lbp_motion.federated.flower.experiment import load_experiment

    experiment = load_experiment(config, overrides)  # a bad config fails here, in one line
    by_site = experiment.federation.partition.get("partition", "site") == "site"
    names = simulated_clients(experiment)
    if num_supernodes != len(names):
        what = "training sites" if by_site else "clients in the config's partition"
        raise ConfigError(
            f"--num_supernodes {num_supernodes}: the data has {len(names)} {what} "
            f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}); each virtual SuperNode is one"
        )
    waits_for = experiment.federation.flower.min_available_clients
    if waits_for is not None and waits_for > num_supernodes:
        raise ConfigError(
            f"flower.min_available_clients={waits_for}: more than the {num_supernodes} virtual "
            "SuperNodes; each round would wait flower.connect_timeout for clients that never come"
        )
    resources = backend_config(client_cpus, client_gpus)
    run_dir = _server_run_dir(None, experiment, config)
    server = write_server_settings(run_dir, experiment.config_yaml, config, overrides, False)
    settings = write_simulation_settings(run_dir, server, config, overrides, names, by_site)
    print(f"lbp federate simulate: run folder {run_dir}", flush=True)
    previous = os.environ.get(SIMULATION_ENV)
    os.environ[SIMULATION_ENV] = str(settings)  # inherited by the Ray workers
    try:
        flower_run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=num_supernodes,
            backend_config=resources,
        )
    finally:
        if previous is None:
            os.environ.pop(SIMULATION_ENV, None)
        else:
            os.environ[SIMULATION_ENV] = previous
    status = _status(run_dir)
    if status != "finished":
        raise SimulationError(
            f"the simulated federation ended with status {status!r}; see {run_dir / 'metrics.json'}"
        )
    print(f"Results: {run_dir}")
    return run_dir
