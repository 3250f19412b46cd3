"""``lbp federate server|client|app``: thin wrappers over Flower's SuperLink and SuperNode.

* ``lbp federate server --config FILE [--port 9092] (--insecure | --certificates CA CERT KEY)``
  starts ``flower-superlink`` (which runs the ServerApp in a subprocess), writes the
  Flower app folder and a connection for Flower's CLI, submits the run with
  ``flwr run APP lbp --run-config 'lbp-server="SETTINGS"' --stream``, waits for it to
  end and stops the SuperLink. ``--resume RUN_DIR`` continues a run from its last
  checkpoint at the next round.
* ``lbp federate client --config FILE --data.root DIR --server HOST:PORT [--client-id K]
  (--insecure | --root-certificates CA)`` checks that the site's data load, then runs
  ``flower-supernode`` with the site's settings in its node config, until stopped.
* ``lbp federate app DIR`` writes the Flower app folder, for ``flwr run`` by hand.

Any other ``--section.key value`` argument overrides the config, as with ``lbp fit``.
The children stay in the command's process group (a signal to the group reaches them
all) and are stopped (SIGTERM, then SIGKILL) when the command ends, also on an error
or a SIGTERM/SIGINT. Flower's own helpers (SuperExec, ServerApp and ClientApp
processes) watch their parent's pid and exit with it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ...errors import ConfigError, LbpError

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
"""

CONNECTION_NAME = "lbp"


class FederateError(LbpError):
    """A federation process could not be started or ended badly."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise FederateError(f"{process.args[0]} exited with status {process.returncode} before listening on port {port}")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.3)
    raise FederateError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def stop_process_group(process: subprocess.Popen | None, grace: float = 10.0) -> None:
    """SIGTERM the process group of ``process`` (started with ``start_new_session``),
    then SIGKILL what is left after ``grace`` seconds."""
    if process is None:
        return
    try:
        pgid = os.getpgid(process.pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; give its group a moment, then make sure
        deadline = time.monotonic() + min(wait, 3.0)
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def stop_process(process: subprocess.Popen | None, grace: float = 10.0) -> None:
    """SIGTERM one child (in our own process group), then SIGKILL it after ``grace`` s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10.0)


def _flower_bin(name: str) -> str:
    """A Flower console script next to this Python (the venv's), else on PATH."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def _child_env(flwr_home: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] = "1"
    if flwr_home is not None:
        env["FLWR_HOME"] = str(flwr_home)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def write_app(folder: str | Path) -> Path:
    """Write the Flower app folder (``pyproject.toml``) that ``flwr run`` builds the
    app bundle from."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(APP_PYPROJECT)
    return folder


def write_connection(flwr_home: Path, address: str, root_certificates: str | None) -> Path:
    """A Flower CLI configuration with one SuperLink connection named ``lbp``."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f'default = "{CONNECTION_NAME}"', "", f"[superlink.{CONNECTION_NAME}]", f'address = "{address}"']
    if root_certificates:
        lines.append(f'root-certificates = "{Path(root_certificates).resolve()}"')
    else:
        lines.append("insecure = true")
    path = flwr_home / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _absolute_overrides(overrides: list[str]) -> list[str]:
    """Make values that name existing files or folders absolute (the Flower apps run
    in other processes, possibly in other folders)."""
    out = []
    for item in overrides:
        if not item.startswith("-") and os.path.exists(item):
            item = str(Path(item).resolve())
        elif "=" in item and item.startswith("--"):
            key, value = item.split("=", 1)
            if os.path.exists(value):
                item = f"{key}={Path(value).resolve()}"
        out.append(item)
    return out


def _configs(configs: list[str], overrides: list[str]) -> tuple[str, list[str]]:
    """The first config file, and the others as ``--config`` overrides (absolute paths)."""
    for path in configs:
        if not Path(path).is_file():
            raise ConfigError(f"--config {path}: no such file")
    first, *more = [str(Path(c).resolve()) for c in configs]
    extra = [a for c in more for a in ("--config", c)]
    return first, extra + _absolute_overrides(overrides)


def _transport(args: argparse.Namespace, role: str) -> list[str]:
    if role == "server":
        given = [args.ssl_ca_certfile, args.ssl_certfile, args.ssl_keyfile]
        if args.insecure and any(given):
            raise ConfigError("lbp federate server: give either --insecure or the TLS certificates, not both")
        if args.insecure:
            return ["--insecure"]
        if not all(given):
            raise ConfigError(
                "lbp federate server: TLS needs --ssl-ca-certfile, --ssl-certfile and --ssl-keyfile "
                "(docs/deploy.md); for unencrypted traffic on a trusted network pass --insecure"
            )
        for path in given:
            if not Path(path).is_file():
                raise ConfigError(f"lbp federate server: certificate file {path} does not exist")
        return ["--ssl-ca-certfile", str(Path(args.ssl_ca_certfile).resolve()),
                "--ssl-certfile", str(Path(args.ssl_certfile).resolve()),
                "--ssl-keyfile", str(Path(args.ssl_keyfile).resolve())]
    if args.insecure and args.root_certificates:
        raise ConfigError("lbp federate client: give either --insecure or --root-certificates, not both")
    if args.insecure:
        return ["--insecure"]
    if not args.root_certificates:
        raise ConfigError(
            "lbp federate client: TLS needs --root-certificates CA_CERT (the CA that signed the server's "
            "certificate, docs/deploy.md); for unencrypted traffic on a trusted network pass --insecure"
        )
    if not Path(args.root_certificates).is_file():
        raise ConfigError(f"lbp federate client: certificate file {args.root_certificates} does not exist")
    return ["--root-certificates", str(Path(args.root_certificates).resolve())]


# -- server ----------------------------------------------------------------------------------
def _server_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lbp federate server", allow_abbrev=False,
                                description="Run the federation's server: Flower's SuperLink plus the lbp ServerApp.")
    p.add_argument("--config", required=True, action="append", help="the lbp config (as for lbp fit; repeatable, merged in order)")
    p.add_argument("--host", default="0.0.0.0", help="address the SuperLink listens on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=9092, help="port of the SuperLink's API (Fleet, Control, Runtime; default 9092)")
    p.add_argument("--insecure", action="store_true", help="no TLS: unencrypted traffic (trusted networks and tests only)")
    p.add_argument("--ssl-ca-certfile", help="CA certificate (PEM)")
    p.add_argument("--ssl-certfile", help="the server's certificate (PEM), signed by the CA")
    p.add_argument("--ssl-keyfile", help="the server's private key (PEM)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last checkpoint at the next round")
    p.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to wait for the SuperLink to listen")
    return p


def cmd_server(argv: list[str]) -> int:
    args, overrides = _server_parser().parse_known_args(argv)
    transport = _transport(args, "server")
    config, overrides = _configs(args.config, overrides)
    from .experiment import load_experiment

    experiment = load_experiment(config, overrides)  # a bad config fails here, in one line
    if args.resume:
        run_dir = Path(args.resume).resolve()
        if not (run_dir / "checkpoints" / "last.ckpt").is_file():
            raise ConfigError(f"--resume {args.resume}: no checkpoints/last.ckpt in that folder")
    else:
        from ...results import make_run_dir

        run = experiment.run
        name = run.name or Path(config).stem
        run_dir = make_run_dir(run.out_dir, name).resolve()
    flower_dir = run_dir / "flower"
    flower_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(experiment.config_yaml)
    settings = {"config": config, "overrides": overrides, "run_dir": str(run_dir), "resume": bool(args.resume)}
    settings_path = flower_dir / "server.json"
    settings_path.write_text(json.dumps(settings, indent=2) + "\n")
    app_dir = write_app(flower_dir / "app")
    home = flower_dir / "home"
    connect_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    write_connection(home, f"{connect_host}:{args.port}", args.ssl_ca_certfile)
    env = _child_env(home)
    print(f"lbp federate server: run folder {run_dir}", flush=True)
    superlink = submit = None
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        with open(flower_dir / "superlink.log", "ab") as logf:
            superlink = subprocess.Popen(
                [_flower_bin("flower-superlink"), "--host", args.host, "--port", str(args.port),
                 "--disable-runtime-dependency-installation", "--database", str(flower_dir / "superlink.db"),
                 *transport],
                stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=str(flower_dir),
            )
        wait_for_port(connect_host, args.port, args.startup_timeout, superlink)
        print(f"lbp federate server: SuperLink listening on {args.host}:{args.port}; waiting for clients", flush=True)
        submit = subprocess.Popen(
            [_flower_bin("flwr"), "run", str(app_dir), CONNECTION_NAME, "--stream",
             "--run-config", f'lbp-server="{settings_path}"'],
            env=env, cwd=str(flower_dir),
        )
        while submit.poll() is None:
            if superlink.poll() is not None:
                raise FederateError(f"the SuperLink exited with status {superlink.returncode}; see {flower_dir / 'superlink.log'}")
            if _status(run_dir) in ("finished", "failed"):
                time.sleep(2.0)  # let the stream print the last lines
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("lbp federate server: stopped; resume with --resume " + str(run_dir), file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_process(submit, grace=3.0)
        stop_process(superlink)
    status = _status(run_dir)
    if status != "finished":
        raise FederateError(f"the federation ended with status {status!r}; see {run_dir / 'metrics.json'} and "
                            f"{flower_dir / 'superlink.log'}")
    print(f"Results: {run_dir}")
    return 0


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "metrics.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def _raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


# -- client ----------------------------------------------------------------------------------
def _client_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lbp federate client", allow_abbrev=False,
                                description="Run one site of the federation: Flower's SuperNode plus the lbp ClientApp.")
    p.add_argument("--config", required=True, action="append",
                   help="the lbp config (the server's; repeatable; --data.root points at this site's data)")
    p.add_argument("--server", required=True, metavar="HOST:PORT", help="the SuperLink's address")
    p.add_argument("--client-id", type=int, default=0,
                   help="this site's number (0, 1, ...): seeds its shuffling and dropout like client K of the simulation")
    p.add_argument("--port", type=int, default=None, help="local port of the SuperNode's Runtime API (default: a free one)")
    p.add_argument("--work-dir", default=None, help="where the site keeps its settings and round log "
                   "(default: <run.out_dir>/<run name>-site<K>)")
    p.add_argument("--insecure", action="store_true", help="no TLS: unencrypted traffic (trusted networks and tests only)")
    p.add_argument("--root-certificates", help="CA certificate (PEM) that signed the server's certificate")
    p.add_argument("--skip-check", action="store_true", help="do not load the site's data before joining")
    return p


def cmd_client(argv: list[str]) -> int:
    args, overrides = _client_parser().parse_known_args(argv)
    transport = _transport(args, "client")
    config, overrides = _configs(args.config, overrides)
    from .experiment import load_experiment

    experiment = load_experiment(config, overrides)
    if not args.skip_check:
        from .local import site_training_data

        _, n_k = site_training_data(experiment.datamodule)
        print(f"lbp federate client {args.client_id}: {n_k} training windows (num-examples)", flush=True)
    run = experiment.run
    work_dir = Path(args.work_dir or Path(run.out_dir) / f"{run.name or Path(config).stem}-site{args.client_id}").resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    settings = {"config": config, "overrides": overrides, "client_id": args.client_id, "work_dir": str(work_dir)}
    settings_path = work_dir / "client.json"
    settings_path.write_text(json.dumps(settings, indent=2) + "\n")
    port = args.port or free_port()
    node = None
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        node = subprocess.Popen(
            [_flower_bin("flower-supernode"), "--superlink", args.server, "--host", "127.0.0.1", "--port", str(port),
             "--node-config", f'lbp-client="{settings_path}"', *transport],
            env=_child_env(work_dir / "flwr-home"), cwd=str(work_dir),
        )
        print(f"lbp federate client {args.client_id}: SuperNode connecting to {args.server}", flush=True)
        return node.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_process(node)


# -- app ---------------------------------------------------------------------------------------
def cmd_app(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lbp federate app", description="Write the Flower app folder for `flwr run`.")
    p.add_argument("folder")
    args = p.parse_args(argv)
    folder = write_app(args.folder)
    print(f"Wrote {folder / 'pyproject.toml'}; run it with: flwr run {folder} CONNECTION --stream "
          "--run-config 'lbp-server=\"/path/to/server.json\"' (docs/deploy.md)")
    return 0


COMMANDS = {"server": cmd_server, "client": cmd_client, "app": cmd_app}


def cmd_federate(argv: list[str]) -> int:
    """``lbp federate``: real multi-site FedAvg on Flower (server, client, app)."""
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: lbp federate {server,client,app} [options]   (lbp federate server --help; docs/deploy.md)")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    import importlib.util

    if argv[0] != "app" and importlib.util.find_spec("flwr") is None:
        raise ConfigError("lbp federate needs Flower: pip install \"lbp-motion[fl]\" (flwr 1.41)")
    return COMMANDS[argv[0]](argv[1:])
