"""Who may run what: a rogue ``flwr run`` and an unknown SuperNode, on loopback.

A real ``lbp federate server`` (TLS, SuperNode authentication with one registered key)
and one clinic (``lbp federate client --auth_key``). The rogue holds the public CA
certificate and a tiny Flower app whose ClientApp would copy the site's ``labels.csv``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from lbp_motion.cli.federate import cmd_keys
from lbp_motion.federated.flower.deploy import free_port, write_app  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.federated.flower.test_flower import SITES, SMALL, Processes, _certificates  # noqa: E402

pytestmark = pytest.mark.e2e

ROGUE_PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "rogue"
version = "1.0.0"
dependencies = []

[tool.flwr.app]
publisher = "rogue"

[tool.flwr.app.components]
serverapp = "rogue_app.apps:server_app"
clientapp = "rogue_app.apps:client_app"

[tool.flwr.app.config]
loot = ""
"""

ROGUE_APPS = """\
import os, shutil
from flwr.app import Message, RecordDict, ConfigRecord
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

server_app = ServerApp()
client_app = ClientApp()
LOOT = {loot!r}

@client_app.query()
def steal(msg, context):
    os.makedirs(LOOT, exist_ok=True)
    open(os.path.join(LOOT, "stolen.txt"), "w").write(repr(os.listdir(".")))
    return Message(RecordDict({{"x": ConfigRecord({{"ok": 1}})}}), reply_to=msg)

@server_app.main()
def main(grid, context):
    os.makedirs(LOOT, exist_ok=True)
    open(os.path.join(LOOT, "server-ran.txt"), "w").write("yes")
    msgs = [Message(RecordDict(), message_type="query", dst_node_id=n) for n in grid.get_node_ids()]
    list(grid.send_and_receive(msgs, timeout=60))
"""


def _rogue_app(folder: Path, loot: Path) -> Path:
    (folder / "rogue_app").mkdir(parents=True)
    (folder / "pyproject.toml").write_text(ROGUE_PYPROJECT)
    (folder / "rogue_app" / "__init__.py").write_text("")
    (folder / "rogue_app" / "apps.py").write_text(ROGUE_APPS.format(loot=str(loot)))
    return folder


def _flwr(home: Path, app: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, FLWR_HOME=str(home), FLWR_TELEMETRY_ENABLED="0", PYTHONPATH=str(app))
    return subprocess.run(
        [str(Path(sys.executable).with_name("flwr")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=app,
    )


def _connection(home: Path, address: str, ca: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "x"\n\n[superlink.x]\naddress = "{address}"\n'
        f'root-certificates = "{ca}"\n'
    )


def _wait_for_text(procs: Processes, name: str, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = (
            (procs.folder / f"{name}.log").read_text(errors="replace")
            if (procs.folder / f"{name}.log").exists()
            else ""
        )
        if text in log:
            return log
        if name in procs.children and procs.children[name].poll() is not None:
            pytest.fail(f"{name} exited early:\n{procs.tail(name)}")
        time.sleep(0.5)
    pytest.fail(f"{text!r} not in {name}'s output within {timeout:.0f} s:\n{procs.tail(name)}")


def test_the_lbp_app_hash_is_what_flwr_run_submits(tmp_path):
    """The clinics' default allow-list holds the hash of the FAB ``flwr run`` builds
    from the lbp app folder, and nothing else."""
    from flwr.cli.build import build_fab_from_disk

    from lbp_motion.federated.flower.guard import lbp_app_hash

    fab = build_fab_from_disk(write_app(tmp_path / "app"))
    assert hashlib.sha256(fab).hexdigest() == lbp_app_hash()
    rogue = build_fab_from_disk(_rogue_app(tmp_path / "rogue", tmp_path / "loot"))
    assert hashlib.sha256(rogue).hexdigest() != lbp_app_hash()


@pytest.fixture
def processes(tmp_path):
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


@pytest.mark.slow
def test_rogue_runs_and_unknown_supernodes_are_refused(tmp_path, processes):
    from lbp_motion.datasets.synthetic import generate_tug_dataset

    data = generate_tug_dataset(
        tmp_path / "data", num_subjects=6, recordings_per_subject=1, sites=3, seed=2
    )
    certs = _certificates(tmp_path / "certs")
    cmd_keys(
        [str(tmp_path / "keys"), "--sites", "2"]
    )  # site0 is registered at the server, site1 is not
    port, control = free_port(), free_port()
    common = [
        "--config",
        "experiments/tug_fedavg.yaml",
        "--data.root",
        str(data),
        *SMALL,
        "--run.out_dir",
        str(tmp_path / "runs"),
        "--flower.min_available_clients",
        "2",
        "--flower.connect_timeout",
        "300",
    ]  # the lbp run waits for a second site that never comes
    processes.start(
        "server",
        "federate",
        "server",
        *common,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--control_port",
        str(control),
        "--ssl_ca_certfile",
        str(certs["ca"]),
        "--ssl_certfile",
        str(certs["cert"]),
        "--ssl_keyfile",
        str(certs["key"]),
        "--authorized_keys",
        str(tmp_path / "keys" / "site0.pub"),
    )
    tls = ["--root_certificates", str(certs["ca"])]
    processes.start(
        "client0",
        "federate",
        "client",
        *common,
        "--data.train_sites",
        f"[{SITES[0]}]",
        "--client_id",
        "0",
        "--server",
        f"127.0.0.1:{port}",
        *tls,
        "--skip_check",
        "--auth_key",
        str(tmp_path / "keys" / "site0"),
        "--work_dir",
        str(tmp_path / "site0"),
    )
    _wait_for_text(processes, "server", "waiting for clients", 240)

    # an unknown SuperNode (its key is not registered) cannot join: it stops, saying why
    processes.start(
        "client1",
        "federate",
        "client",
        *common,
        "--data.train_sites",
        f"[{SITES[1]}]",
        "--client_id",
        "1",
        "--server",
        f"127.0.0.1:{port}",
        *tls,
        "--skip_check",
        "--auth_key",
        str(tmp_path / "keys" / "site1"),
        "--work_dir",
        str(tmp_path / "site1"),
        "--connect_retries",
        "2",
        "--connect_wait",
        "30",
    )
    assert processes.wait("client1", timeout=180) == 2, processes.tail("client1")
    assert "does not know this site's SuperNode key" in processes.tail("client1", 3)

    # the rogue, with the public CA certificate, against the public port: refused, nothing runs
    loot = tmp_path / "loot"
    rogue = _rogue_app(tmp_path / "rogue", loot)
    _connection(tmp_path / "rogue-home", f"127.0.0.1:{port}", certs["ca"])
    started = time.monotonic()
    result = _flwr(tmp_path / "rogue-home", rogue, "run", str(rogue), "x")
    assert result.returncode != 0, result.stdout + result.stderr
    assert "403" in result.stdout + result.stderr or "Forbidden" in result.stdout + result.stderr, (
        result.stdout
    )
    rogue_seconds = time.monotonic() - started

    # an insider on the coordinator (the local Control API): the lbp server reports the run
    # and stops it, and the clinic would refuse its app anyway
    _connection(tmp_path / "local-home", f"127.0.0.1:{control}", certs["ca"])
    result = _flwr(tmp_path / "local-home", rogue, "run", str(rogue), "x")
    assert result.returncode == 0, result.stdout + result.stderr
    log = _wait_for_text(processes, "server", "this server did not submit it", 120)
    assert "NOT submitted by this server" in log and "@rogue/rogue" in log
    time.sleep(5)
    assert not (loot / "stolen.txt").exists()
    print(f"rogue flwr run refused at the public port in {rogue_seconds:.0f} s")


def _start_command(
    procs: Processes, name: str, argv: list[str], env: dict[str, str]
) -> subprocess.Popen:
    """Like :meth:`Processes.start`, for any command: own process group, output to NAME.log."""
    log = open(procs.folder / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
    )
    log.close()
    procs.children[name] = proc
    return proc


@pytest.mark.slow
def test_the_guarded_supernode_refuses_another_app_with_no_watcher(tmp_path, processes):
    """The clinic's own defence, alone: a plain SuperLink (no lbp server, no run watcher)
    sends the guarded SuperNode a message of the rogue app; the SuperNode refuses it,
    logs the app's hash, runs none of its code, and stays up."""
    from flwr.cli.build import build_fab_from_disk

    from lbp_motion.federated.flower.deploy import wait_for_port
    from lbp_motion.federated.flower.processes import child_env

    loot = tmp_path / "loot"
    rogue = _rogue_app(tmp_path / "rogue", loot)
    rogue_hash = hashlib.sha256(build_fab_from_disk(rogue)).hexdigest()
    refused = tmp_path / "refused.jsonl"
    port, node_port = free_port(), free_port()
    # as `lbp federate` does (child_env): Flower's own helpers (flower-superexec) are found
    # on PATH, which `make test` does not set to the virtualenv
    env = dict(child_env(), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    link_env = dict(
        env,
        FLWR_HOME=str(tmp_path / "link-home"),
        PYTHONPATH=os.pathsep.join([str(rogue), str(ROOT)]),
    )
    link = _start_command(
        processes,
        "superlink",
        [
            str(Path(sys.executable).with_name("flower-superlink")),
            "--insecure",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--disable-runtime-dependency-installation",
            "--database",
            str(tmp_path / "superlink.db"),
        ],
        link_env,
    )
    wait_for_port("127.0.0.1", port, 90, link)
    node_env = dict(env, FLWR_HOME=str(tmp_path / "node-home"), PYTHONPATH=str(ROOT))
    _start_command(
        processes,
        "supernode",
        [
            sys.executable,
            "-m",
            "lbp_motion.federated.flower.guard",
            "--log",
            str(refused),
            "--",
            "--superlink",
            f"127.0.0.1:{port}",
            "--insecure",
            "--host",
            "127.0.0.1",
            "--port",
            str(node_port),
            "--max-retries",
            "5",
            "--max-wait-time",
            "60",
        ],
        node_env,
    )
    _wait_for_text(processes, "supernode", "SuperNode ID:", 90)

    home = tmp_path / "rogue-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "x"\n\n[superlink.x]\naddress = "127.0.0.1:{port}"\n'
        "insecure = true\n"
    )
    started = time.monotonic()
    result = _flwr(home, rogue, "run", str(rogue), "x")
    assert result.returncode == 0, (
        result.stdout + result.stderr
    )  # a plain SuperLink accepts the run

    deadline = time.monotonic() + 90
    while not (refused.exists() and refused.read_text().strip()):
        if time.monotonic() > deadline:
            pytest.fail(
                f"no refusal logged within 90 s\nsupernode:\n{processes.tail('supernode')}\n"
                f"superlink:\n{processes.tail('superlink')}\nloot: {sorted(os.listdir(loot)) if loot.exists() else []}"
            )
        assert processes.children["supernode"].poll() is None, processes.tail("supernode")
        time.sleep(0.5)
    records = [json.loads(line) for line in refused.read_text().splitlines() if line.strip()]
    assert records[0]["fab_hash"] == rogue_hash, records
    assert (
        loot / "server-ran.txt"
    ).exists()  # the rogue's ServerApp did run at the coordinator and sent its query
    time.sleep(5)  # time for a ClientApp to have run, had one been started
    assert not (loot / "stolen.txt").exists(), processes.tail("supernode")
    assert processes.children["supernode"].poll() is None, processes.tail("supernode")
    assert "refused run" in processes.tail("supernode", 200)
    print(
        f"guarded SuperNode refused the rogue app {time.monotonic() - started:.0f} s after flwr run"
    )
