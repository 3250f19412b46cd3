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
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from lbp_motion.errors import ConfigError, LbpError
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

CONNECTION_NAME = "lbp"


class FederateError(LbpError):
    """A federation process could not be started or ended badly."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(
    host: str, port: int, timeout: float, process: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise FederateError(
                f"{process.args[0]} exited with status {process.returncode} before listening on port {port}"
            )
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
    lines = [
        "[superlink]",
        f'default = "{CONNECTION_NAME}"',
        "",
        f"[superlink.{CONNECTION_NAME}]",
        f'address = "{address}"',
    ]
    if root_certificates:
        lines.append(f'root-certificates = "{Path(root_certificates).resolve()}"')
    else:
        lines.append("insecure = true")
    path = flwr_home / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


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
    flower_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(experiment.config_yaml)
    settings = {
        "config": config,
        "overrides": overrides,
        "run_dir": str(run_dir),
        "resume": bool(args.resume),
    }
    settings_path = flower_dir / "server.json"
    settings_path.write_text(json.dumps(settings, indent=2) + "\n")
    app_dir = write_app(flower_dir / "app")
    home = flower_dir / "home"
    control_port = args.control_port or free_port()
    control = f"127.0.0.1:{control_port}"
    write_connection(home, control, args.ssl_ca_certfile)
    env = _child_env(home)
    token = secrets.token_hex(16)
    print(f"lbp federate server: run folder {run_dir}", flush=True)
    superlink = gateway = submit = watcher = None
    try:
        with open(flower_dir / "superlink.log", "ab") as logf:
            superlink = subprocess.Popen(
                [
                    _flower_bin("flower-superlink"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(control_port),
                    "--disable-runtime-dependency-installation",
                    "--database",
                    str(flower_dir / "superlink.db"),
                    *(["--enable-supernode-auth"] if keys else []),
                    *tls,
                ],
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(flower_dir),
            )
        wait_for_port("127.0.0.1", control_port, args.startup_timeout, superlink)
        gateway_tls = [] if args.insecure else tls
        with open(flower_dir / "gateway.log", "ab") as logf:
            gateway = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lbp_motion.federated.flower.gateway",
                    "--listen",
                    f"{args.host}:{args.port}",
                    "--upstream",
                    control,
                    *gateway_tls,
                ],
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(flower_dir),
            )
        connect_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        wait_for_port(connect_host, args.port, args.startup_timeout, gateway)
        runs = RunWatcher(control, args.ssl_ca_certfile, home, token)
        for key in keys or []:
            runs.register_node(key)
        print(
            f"lbp federate server: Fleet API on {args.host}:{args.port} (nothing else is served there); "
            f"SuperLink on {control} (local only){'; SuperNode authentication on, ' + str(len(keys)) + ' key(s)' if keys else ''}; "
            "waiting for clients",
            flush=True,
        )
        submit = subprocess.Popen(
            [
                _flower_bin("flwr"),
                "run",
                str(app_dir),
                CONNECTION_NAME,
                "--stream",
                "--run-config",
                f'lbp-server="{settings_path}" lbp-token="{token}"',
            ],
            env=env,
            cwd=str(flower_dir),
        )
        watcher = runs.start()
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


class RunWatcher:
    """Watches the runs of the SuperLink through its (local) Control API: prints every
    run it sees, and stops any run that is not the one this server submitted (the one
    whose run config holds this server's random ``lbp-token``)."""

    def __init__(
        self,
        address: str,
        root_certificates: str | None,
        home: Path,
        token: str,
        interval: float = 2.0,
    ):
        self.address, self.root_certificates, self.home, self.token = (
            address,
            root_certificates,
            home,
            token,
        )
        self.interval = interval
        self.seen: dict[int, str] = {}
        self.ours: int | None = None
        self._stop = None

    def _client(self):
        os.environ["FLWR_HOME"] = str(self.home)
        from flwr.cli.typing import SuperLinkConnection
        from flwr.cli.utils import init_http_client_from_connection

        connection = SuperLinkConnection(
            CONNECTION_NAME,
            address=self.address,
            root_certificates=str(Path(self.root_certificates).resolve())
            if self.root_certificates
            else None,
            insecure=self.root_certificates is None,
        )
        return init_http_client_from_connection(connection)

    def register_node(self, public_key: Path) -> None:
        """Register a clinic's SuperNode public key (what ``flwr supernode register`` does)."""
        from flwr.cli.supernode.register import try_load_public_key
        from flwr.proto.control_pb2 import RegisterNodeRequest

        client = self._client()
        try:
            client.RegisterNode(
                RegisterNodeRequest(
                    public_key=try_load_public_key(public_key), name=public_key.stem
                )
            )
            print(f"lbp federate server: SuperNode key {public_key.name} registered", flush=True)
        except Exception as err:  # a resumed server's database already holds the key
            if "already" not in str(err).lower() and "in use" not in str(err).lower():
                raise FederateError(
                    f"--authorized_keys {public_key}: the SuperLink refused it: {err}"
                ) from None
            print(
                f"lbp federate server: SuperNode key {public_key.name} was registered before",
                flush=True,
            )
        finally:
            client.close()

    def check(self, client) -> None:
        from flwr.proto.control_pb2 import ListRunsRequest, StopRunRequest

        response = client.ListRuns(ListRunsRequest())
        for run_id, run in sorted(response.run_dict.items()):
            run_id = int(run_id)
            token = (
                run.override_config["lbp-token"].string
                if "lbp-token" in run.override_config
                else ""
            )
            mine = token == self.token
            if mine and self.ours is None:
                self.ours = run_id
            status = run.status.status + (
                f":{run.status.sub_status}" if run.status.sub_status else ""
            )
            if run_id not in self.seen:
                who = "submitted by this server" if mine else "NOT submitted by this server"
                print(
                    f"lbp federate server: run {run_id}: app @{run.fab_id}=={run.fab_version} "
                    f"(FAB sha256 {run.fab_hash[:16]}...), {status}, {who}",
                    flush=True,
                )
            self.seen[run_id] = status
            if not mine and run.status.status != "finished":
                try:
                    client.StopRun(StopRunRequest(run_id=run_id))
                    print(
                        f"lbp federate server: stopped run {run_id}: this server did not submit it",
                        flush=True,
                    )
                except Exception as err:  # e.g. it finished meanwhile
                    print(f"lbp federate server: could not stop run {run_id}: {err}", flush=True)

    def start(self):
        import threading

        self._stop = threading.Event()
        thread = threading.Thread(target=self._loop, name="lbp-run-watcher", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _loop(self) -> None:
        client = None
        while not self._stop.is_set():
            try:
                client = client or self._client()
                self.check(client)
            except Exception as err:  # the SuperLink restarting; keep watching
                log_line = f"lbp federate server: could not list runs: {type(err).__name__}: {err}"
                print(log_line[:300], file=sys.stderr, flush=True)
                client = None
            self._stop.wait(self.interval)


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "metrics.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


# -- client ----------------------------------------------------------------------------------
def _own_group_dying_with_parent() -> None:
    """In the child before exec: a new session, and SIGKILL when the parent dies (Linux)."""
    os.setsid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the finally block below still stops it
        pass


def probe_server(server: str, root_certificates: str | None, timeout: float = 5.0) -> str | None:
    """Why this site cannot talk to ``server`` now (one line), or None when it can:
    unreachable, TLS on one side only, or a certificate that the CA did not sign."""
    import ssl

    host, _, port = server.rpartition(":")
    host = host.strip("[]")
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout)
    except socket.gaierror as err:
        return f"cannot resolve the server name {host!r} ({err.strerror})"
    except TimeoutError:
        return f"cannot reach {server}: no answer within {timeout:.0f} s (host down, or a firewall drops the traffic)"
    except OSError as err:
        return f"cannot reach {server}: {err.strerror or err} (is the server running and the port open?)"
    with sock:
        sock.settimeout(timeout)
        if root_certificates is None:  # plain HTTP: a TLS server answers with an alert or closes
            try:
                sock.sendall(
                    f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
                )
                head = sock.recv(16)
            except OSError:
                head = b""
            if head.startswith(b"HTTP/"):
                return None
            return (
                f"{server} did not answer plain HTTP: the server runs TLS; give --root_certificates CA_CERT "
                "instead of --insecure"
            )
        context = ssl.create_default_context(cafile=root_certificates)
        try:
            with context.wrap_socket(sock, server_hostname=host):
                return None
        except ssl.SSLCertVerificationError as err:
            if (
                "hostname" in str(err.verify_message).lower()
                or "ip address mismatch" in str(err).lower()
            ):
                return f"the server's certificate does not name {host!r}: {err.verify_message}"
            return (
                f"the server's certificate is not signed by --root_certificates {root_certificates} "
                f"(wrong CA?): {err.verify_message}"
            )
        except ssl.SSLError as err:
            if (
                "WRONG_VERSION_NUMBER" in str(err)
                or "record layer" in str(err).lower()
                or "packet length" in str(err)
            ):
                return f"{server} does not speak TLS (the server runs --insecure?): {err.reason}"
            return f"TLS handshake with {server} failed: {err.reason or err}"
        except OSError as err:
            return f"TLS handshake with {server} failed: {err}"


def wait_for_server(server: str, root_certificates: str | None, attempts: int, wait: float) -> None:
    """Probe the server up to ``attempts`` times within ``wait`` seconds; raise
    :class:`FederateError` with the reason. TLS problems fail at once (retrying cannot
    fix them); an unreachable server is retried (it may not be up yet)."""
    deadline = time.monotonic() + wait
    for attempt in range(1, max(attempts, 1) + 1):
        reason = probe_server(server, root_certificates)
        if reason is None:
            return
        if not reason.startswith(("cannot reach", "cannot resolve")):
            raise FederateError(reason)
        if attempt >= attempts or time.monotonic() + min(2.0 * attempt, 30.0) > deadline:
            raise FederateError(f"{reason}; gave up after {attempt} attempt(s)")
        print(
            f"lbp federate client: {reason}; retrying ({attempt}/{attempts})",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(min(2.0 * attempt, 30.0))


def _supernode_failure(lines: list[str]) -> str:
    """The likely reason in the last lines a SuperNode printed before it exited."""
    text = "\n".join(lines)
    low = text.lower()
    if (
        "failed to activate" in low
        or "activation_failed" in low
        or "no supernode found" in low
        or "401" in low
        or "registration" in low
        or "invalid supernode authentication" in low
    ):
        return (
            "the server does not know this site's SuperNode key: give --auth_key PRIVATE_KEY and have the "
            "server list its public key in --authorized_keys"
        )
    if "certificate" in low or "ssl" in low or "tls" in low:
        return "TLS failed between this site and the server (check --root_certificates and the server's certificate)"
    for line in reversed(lines):
        if line.strip() and "error" in line.lower():
            return line.strip()[:300]
    return lines[-1].strip()[:300] if lines else "no output"


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
    run = experiment.run
    work_dir = Path(
        args.work_dir or Path(run.out_dir) / f"{run.name or Path(config).stem}-site{args.client_id}"
    ).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "config": config,
        "overrides": overrides,
        "client_id": args.client_id,
        "work_dir": str(work_dir),
    }
    settings_path = work_dir / "client.json"
    settings_path.write_text(json.dumps(settings, indent=2) + "\n")
    root_ca = None if args.insecure else str(Path(args.root_certificates).resolve())
    wait_for_server(args.server, root_ca, args.connect_retries, args.connect_wait)
    port = args.port or free_port()
    auth = (
        ["--auth-supernode-private-key", str(Path(args.auth_key).resolve())]
        if args.auth_key
        else []
    )
    node = None
    tail: list[str] = []
    try:
        node = subprocess.Popen(
            [
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
            ],
            env=_child_env(work_dir / "flwr-home"),
            cwd=str(work_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            # its own group, so that its helpers (SuperExec) go with it (stop_process_group
            # below), and killed with this process even by SIGKILL: no orphan SuperNode
            # goes on taking part in rounds after its lbp client is gone
            preexec_fn=_own_group_dying_with_parent,
        )
        print(
            f"lbp federate client {args.client_id}: SuperNode connecting to {args.server}",
            flush=True,
        )
        import threading

        def relay() -> None:  # the SuperNode's output to ours; keep its last lines
            for line in node.stdout:
                sys.stderr.write(line)
                sys.stderr.flush()
                tail.append(line.rstrip("\n"))
                del tail[:-40]

        reader = threading.Thread(target=relay, daemon=True)
        reader.start()
        code = node.wait()
        for sig in (
            signal.SIGTERM,
            signal.SIGKILL,
        ):  # its group (pgid = its pid): e.g. a SuperExec left retrying
            try:
                os.killpg(node.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(1.0)
        reader.join(timeout=5.0)
    except Interrupted as stop:  # SIGTERM/SIGINT (lbp's entry point): status 128 + signal
        raise stop.resume_with(
            "start the client again: the site rejoins at the next round"
        ) from None
    finally:
        stop_process_group(node, grace=10.0)
    if code == 0:
        return 0
    reason = probe_server(args.server, root_ca) or _supernode_failure(tail)
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
