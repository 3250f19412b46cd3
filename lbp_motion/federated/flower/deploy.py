"""``lbp federate server|client|keys|app``: thin wrappers over Flower's SuperLink and SuperNode
(their command lines and option checks: :mod:`lbp_motion.cli.federate`).

* ``lbp federate server --config FILE [--port 9092] (--insecure | --ssl_ca_certfile CA
  --ssl_certfile CERT --ssl_keyfile KEY)``
  starts ``flower-superlink`` (which runs the ServerApp in a subprocess), writes the
  Flower app folder and a connection for Flower's CLI, submits the run with
  ``flwr run APP lbp --run-config 'lbp-server="SETTINGS"' --stream``, waits for it to
  end and stops the SuperLink. ``--resume RUN_DIR`` continues a run from its last
  checkpoint at the next round.
* ``lbp federate client --config FILE --data.root DIR --server HOST:PORT [--client_id K]
  (--insecure | --root_certificates CA)`` checks that the site's data load, then runs
  ``flower-supernode`` with the site's settings in its node config, until stopped.
* ``lbp federate keys DIR --sites N`` makes the clinics' SuperNode key pairs.
* ``lbp federate app DIR`` writes the Flower app folder, for ``flwr run`` by hand.

Any other ``--section.key value`` argument overrides the config, as with ``lbp fit``.
The children stay in the command's process group (a signal to the group reaches them
all) and are stopped (SIGTERM, then SIGKILL) when the command ends, also on an error
or a SIGTERM/SIGINT. Flower's own helpers (SuperExec, ServerApp and ClientApp
processes) watch their parent's pid and exit with it.

The pieces live beside this module and stay importable from here: the child processes
(:mod:`.processes`: ports, Flower's executables, stopping children), the SuperLink's
Control API (:mod:`.control`: the Flower CLI connection, :class:`RunWatcher`) and a
site's checks of its server (:mod:`.connectivity`).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from lbp_motion.errors import ConfigError
from lbp_motion.federated.flower.connectivity import (
    probe_server,
    supernode_failure,
    wait_for_server,
)
from lbp_motion.federated.flower.control import CONNECTION_NAME, RunWatcher, write_connection
from lbp_motion.federated.flower.processes import (
    FederateError,
    child_env,
    flower_bin,
    free_port,
    own_group_dying_with_parent,
    stop_process,
    stop_process_group,
    wait_for_port,
)
from lbp_motion.interrupts import Interrupted

APP_PYPROJECT = """\
# The lbp_motion Flower app (written by `lbp federate`). Its components live in the
# installed lbp_motion package; every machine of the federation needs
# `pip install "lbp-motion[fl]"` (runtime dependency installation is not used).
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "lbp-federate"
version = "1.0.0"
description = "lbp_motion FedAvg over Flower: the config's task trained at each site"
license = "BSD-3-Clause"
dependencies = []

[tool.flwr.app]
publisher = "lbp-motion"

[tool.flwr.app.components]
serverapp = "lbp_motion.federated.flower.apps:server_app"
clientapp = "lbp_motion.federated.flower.apps:client_app"

[tool.flwr.app.config]
# path of the server's settings file (written by `lbp federate server`, docs/deploy.md)
lbp-server = ""
# a random token by which `lbp federate server` recognises the run it submitted
lbp-token = ""
"""


def write_app(folder: str | Path) -> Path:
    """Write the Flower app folder (``pyproject.toml``) that ``flwr run`` builds the
    app bundle from."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(APP_PYPROJECT)
    return folder


# -- server ----------------------------------------------------------------------------------
def _server_run_dir(resume: str | None, experiment, config: str) -> Path:
    """The run folder: ``--resume RUN_DIR``'s, else a new one under ``run.out_dir``."""
    if resume:
        run_dir = Path(resume).resolve()
        if not (run_dir / "checkpoints" / "last.ckpt").is_file():
            raise ConfigError(f"--resume {resume}: no checkpoints/last.ckpt in that folder")
        return run_dir
    from lbp_motion.evaluation.results import make_run_dir

    run = experiment.run
    return make_run_dir(run.out_dir, run.name or Path(config).stem).resolve()


def write_server_settings(
    run_dir: Path, config_yaml: str, config: str, overrides: list[str], resume: bool
) -> Path:
    """The run folder's ``config.yaml`` and the ServerApp's settings file
    ``flower/server.json`` (what reaches it through the run config key ``lbp-server``)."""
    flower_dir = run_dir / "flower"
    flower_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config_yaml)
    settings = {
        "config": config,
        "overrides": overrides,
        "run_dir": str(run_dir),
        "resume": resume,
    }
    settings_path = flower_dir / "server.json"
    settings_path.write_text(json.dumps(settings, indent=2) + "\n")
    return settings_path


def superlink_command(
    control_port: int, database: Path, tls: list[str], authenticate: bool
) -> list[str]:
    """``flower-superlink`` on 127.0.0.1 only, with SuperNode authentication when the
    server holds the clinics' keys."""
    return [
        flower_bin("flower-superlink"),
        "--host",
        "127.0.0.1",
        "--port",
        str(control_port),
        "--disable-runtime-dependency-installation",
        "--database",
        str(database),
        *(["--enable-supernode-auth"] if authenticate else []),
        *tls,
    ]


def gateway_command(listen: str, upstream: str, tls: list[str]) -> list[str]:
    """The public port (:mod:`.gateway`): the Fleet API only, forwarded to the SuperLink."""
    return [
        sys.executable,
        "-m",
        "lbp_motion.federated.flower.gateway",
        "--listen",
        listen,
        "--upstream",
        upstream,
        *tls,
    ]


def submit_command(app_dir: Path, settings_path: Path, token: str) -> list[str]:
    """``flwr run`` of the lbp app with the server's settings and this run's token."""
    return [
        flower_bin("flwr"),
        "run",
        str(app_dir),
        CONNECTION_NAME,
        "--stream",
        "--run-config",
        f'lbp-server="{settings_path}" lbp-token="{token}"',
    ]


def _start_logged(
    command: list[str], log: Path, env: dict[str, str], cwd: Path
) -> subprocess.Popen:
    """A child in our process group whose output goes to ``log`` (appended)."""
    with open(log, "ab") as logf:
        return subprocess.Popen(
            command, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=str(cwd)
        )


def _wait_for_run(
    submit: subprocess.Popen,
    superlink: subprocess.Popen,
    gateway: subprocess.Popen,
    run_dir: Path,
) -> None:
    """Until ``flwr run`` returns or the run's ``metrics.json`` says it ended; a
    SuperLink or gateway that exits meanwhile is an error naming its log."""
    flower_dir = run_dir / "flower"
    while submit.poll() is None:
        if superlink.poll() is not None:
            raise FederateError(
                f"the SuperLink exited with status {superlink.returncode}; see {flower_dir / 'superlink.log'}"
            )
        if gateway.poll() is not None:
            raise FederateError(
                f"the gateway exited with status {gateway.returncode}; see {flower_dir / 'gateway.log'}"
            )
        if _status(run_dir) in ("finished", "failed"):
            time.sleep(2.0)  # let the stream print the last lines
            break
        time.sleep(0.5)


def _listening_message(args: argparse.Namespace, control: str, keys: list[Path] | None) -> str:
    auth = f"; SuperNode authentication on, {len(keys)} key(s)" if keys else ""
    return (
        f"lbp federate server: Fleet API on {args.host}:{args.port} (nothing else is served there); "
        f"SuperLink on {control} (local only){auth}; waiting for clients"
    )


def run_server(
    args: argparse.Namespace,
    config: str,
    overrides: list[str],
    tls: list[str],
    keys: list[Path] | None,
) -> int:
    """``lbp federate server`` with its options checked (:mod:`lbp_motion.cli.federate`):
    Flower's SuperLink plus the lbp ServerApp, until the run ends. ``tls``: the TLS
    options of Flower's executables; ``keys``: the SuperNodes' public keys, if any."""
    from lbp_motion.federated.flower.experiment import load_experiment

    experiment = load_experiment(config, overrides)  # a bad config fails here, in one line
    run_dir = _server_run_dir(args.resume, experiment, config)
    flower_dir = run_dir / "flower"
    settings_path = write_server_settings(
        run_dir, experiment.config_yaml, config, overrides, resume=bool(args.resume)
    )
    app_dir = write_app(flower_dir / "app")
    home = flower_dir / "home"
    control_port = args.control_port or free_port()
    control = f"127.0.0.1:{control_port}"
    write_connection(home, control, args.ssl_ca_certfile)
    env = child_env(home)
    token = secrets.token_hex(16)
    print(f"lbp federate server: run folder {run_dir}", flush=True)
    superlink = gateway = submit = watcher = None
    try:
        superlink = _start_logged(
            superlink_command(control_port, flower_dir / "superlink.db", tls, bool(keys)),
            flower_dir / "superlink.log",
            env,
            flower_dir,
        )
        wait_for_port("127.0.0.1", control_port, args.startup_timeout, superlink)
        gateway = _start_logged(
            gateway_command(f"{args.host}:{args.port}", control, [] if args.insecure else tls),
            flower_dir / "gateway.log",
            env,
            flower_dir,
        )
        connect_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        wait_for_port(connect_host, args.port, args.startup_timeout, gateway)
        runs = RunWatcher(control, args.ssl_ca_certfile, home, token)
        for key in keys or []:
            runs.register_node(key)
        print(_listening_message(args, control, keys), flush=True)
        submit = subprocess.Popen(
            submit_command(app_dir, settings_path, token), env=env, cwd=str(flower_dir)
        )
        watcher = runs.start()
        _wait_for_run(submit, superlink, gateway, run_dir)
    except Interrupted as stop:  # SIGTERM/SIGINT (lbp's entry point): status 128 + signal
        raise stop.resume_with(f"resume with the same command and --resume {run_dir}") from None
    finally:
        if watcher is not None:
            runs.stop()
        stop_process(submit, grace=3.0)
        stop_process(gateway, grace=3.0)
        stop_process(superlink)
    status = _status(run_dir)
    if status != "finished":
        raise FederateError(
            f"the federation ended with status {status!r}; see {run_dir / 'metrics.json'} and "
            f"{flower_dir / 'superlink.log'}"
        )
    print(f"Results: {run_dir}")
    return 0


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "metrics.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


# -- client ----------------------------------------------------------------------------------
def _client_work_dir(args: argparse.Namespace, experiment, config: str) -> Path:
    """``--work_dir``, else ``<run.out_dir>/<run name>-site<K>`` (made, absolute)."""
    run = experiment.run
    work_dir = Path(
        args.work_dir or Path(run.out_dir) / f"{run.name or Path(config).stem}-site{args.client_id}"
    ).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    return work_dir


def write_client_settings(
    work_dir: Path, config: str, overrides: list[str], client_id: int
) -> Path:
    """The ClientApp's settings file ``client.json`` (what reaches it through the
    SuperNode's node config key ``lbp-client``)."""
    settings = {
        "config": config,
        "overrides": overrides,
        "client_id": client_id,
        "work_dir": str(work_dir),
    }
    settings_path = work_dir / "client.json"
    settings_path.write_text(json.dumps(settings, indent=2) + "\n")
    return settings_path


def supernode_command(
    args: argparse.Namespace, settings_path: Path, work_dir: Path, port: int, tls: list[str]
) -> list[str]:
    """``flower-supernode`` behind the app-hash guard (:mod:`.guard`: only approved app
    bundles run), with this site's key when it has one (``--auth_key``)."""
    auth = (
        ["--auth-supernode-private-key", str(Path(args.auth_key).resolve())]
        if args.auth_key
        else []
    )
    return [
        sys.executable,
        "-m",
        "lbp_motion.federated.flower.guard",
        "--approved",
        ",".join(args.approve_app_hash),
        "--log",
        str(work_dir / "refused-runs.jsonl"),
        "--",
        "--superlink",
        args.server,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-retries",
        str(args.connect_retries),
        "--max-wait-time",
        str(args.connect_wait),
        "--node-config",
        f'lbp-client="{settings_path}"',
        *auth,
        *tls,
    ]


def _start_supernode(command: list[str], work_dir: Path) -> subprocess.Popen:
    """The SuperNode, its output piped to us (:func:`_relay_until_exit`)."""
    return subprocess.Popen(
        command,
        env=child_env(work_dir / "flwr-home"),
        cwd=str(work_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        # its own group, so that its helpers (SuperExec) go with it (stop_process_group
        # in run_client), and killed with this process even by SIGKILL: no orphan
        # SuperNode goes on taking part in rounds after its lbp client is gone
        preexec_fn=own_group_dying_with_parent,
    )


def _relay_until_exit(node: subprocess.Popen, tail: list[str]) -> int:
    """Copy the SuperNode's output to our stderr (keeping its last 40 lines in
    ``tail``) until it exits, then end what is left of its group; its exit status."""

    def relay() -> None:
        for line in node.stdout:
            sys.stderr.write(line)
            sys.stderr.flush()
            tail.append(line.rstrip("\n"))
            del tail[:-40]

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    code = node.wait()
    # its group (pgid = its pid): e.g. a SuperExec left retrying
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(node.pid, sig)
        except ProcessLookupError:
            break
        time.sleep(1.0)
    reader.join(timeout=5.0)
    return code


def run_client(args: argparse.Namespace, config: str, overrides: list[str], tls: list[str]) -> int:
    """``lbp federate client`` with its options checked (:mod:`lbp_motion.cli.federate`):
    this clinic's SuperNode behind the app-hash guard, until the federation ends."""
    from lbp_motion.federated.flower.experiment import load_experiment

    experiment = load_experiment(config, overrides)
    if not args.skip_check:
        from lbp_motion.federated.flower.local import site_training_data

        _, n_k = site_training_data(experiment.datamodule)
        print(
            f"lbp federate client {args.client_id}: {n_k} training windows (num-examples)",
            flush=True,
        )
    work_dir = _client_work_dir(args, experiment, config)
    settings_path = write_client_settings(work_dir, config, overrides, args.client_id)
    root_ca = None if args.insecure else str(Path(args.root_certificates).resolve())
    wait_for_server(args.server, root_ca, args.connect_retries, args.connect_wait)
    port = args.port or free_port()
    node = None
    tail: list[str] = []
    try:
        node = _start_supernode(
            supernode_command(args, settings_path, work_dir, port, tls), work_dir
        )
        print(
            f"lbp federate client {args.client_id}: SuperNode connecting to {args.server}",
            flush=True,
        )
        code = _relay_until_exit(node, tail)
    except Interrupted as stop:  # SIGTERM/SIGINT (lbp's entry point): status 128 + signal
        raise stop.resume_with(
            "start the client again: the site rejoins at the next round"
        ) from None
    finally:
        stop_process_group(node, grace=10.0)
    if code == 0:
        return 0
    reason = probe_server(args.server, root_ca) or supernode_failure(tail)
    raise FederateError(f"client {args.client_id}: the SuperNode stopped (status {code}): {reason}")


# -- keys --------------------------------------------------------------------------------------
def write_keys(folder: str | Path, sites: int) -> Path:
    """``lbp federate keys``: one EC key pair per site in ``folder`` (never overwriting a
    key): private ``siteK`` (mode 0600) for clinic K, public ``siteK.pub`` for the server."""
    if sites < 1:
        raise ConfigError("lbp federate keys: --sites must be at least 1")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(sites):
        private, public = folder / f"site{k}", folder / f"site{k}.pub"
        if private.exists() or public.exists():
            raise ConfigError(f"lbp federate keys: {private} exists; not overwriting a key")
        key = ec.generate_private_key(ec.SECP384R1())
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.OpenSSH,
                    serialization.NoEncryption(),
                )
            )
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
            + b"\n"
        )
    return folder
