"""Federation faults, each answered in one line (or recorded by site), not a hang.

Rows that fit the in-process runner are :class:`Case` rows; the TLS rows need a real
listener (lbp's own gateway, TLS or plain, on a free loopback port) and the left-out
rows run the real server loop with lbp's ClientApp in this process.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from lbp_motion.federated.flower.deploy import free_port, stop_process, wait_for_port  # noqa: E402
from tests.reliability.harness import Case, replay  # noqa: E402

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "experiments" / "tug_fedavg.yaml")


def _client(server: str, *extra: str):
    def setup(tmp: Path) -> list[str]:
        return [
            "federate",
            "client",
            "--config",
            CONFIG,
            "--server",
            server,
            "--skip_check",
            "--work_dir",
            str(tmp / "site"),
            "--connect_retries",
            "1",
            "--connect_wait",
            "5",
            *extra,
        ]

    return setup


def _keys(tmp: Path) -> Path:
    from lbp_motion.cli.federate import cmd_keys

    if not (tmp / "keys" / "site0").exists():
        cmd_keys([str(tmp / "keys"), "--sites", "1"])
    return tmp / "keys"


CASES = [
    Case(
        "unreachable-server",
        lambda tmp: _client(f"127.0.0.1:{free_port()}", "--insecure")(tmp),
        r"cannot reach 127\.0\.0\.1:\d+: Connection refused .*gave up after 1 attempt",
    ),
    Case(
        "auth-key-without-tls",
        lambda tmp: _client("127.0.0.1:1", "--insecure", "--auth_key", str(_keys(tmp) / "site0"))(
            tmp
        ),
        r"--auth_key \(SuperNode authentication\) needs TLS",
    ),
    Case(
        "auth-key-missing",
        _client("127.0.0.1:1", "--root_certificates", __file__, "--auth_key", "/nonexistent/key"),
        r"--auth_key /nonexistent/key: no such file",
    ),
    Case(
        "bad-app-hash",
        _client("127.0.0.1:1", "--insecure", "--approve_app_hash", "abc"),
        r"--approve_app_hash abc: expected a SHA-256",
    ),
    Case(
        "authorized-keys-without-tls",
        lambda tmp: [
            "federate",
            "server",
            "--config",
            CONFIG,
            "--insecure",
            "--authorized_keys",
            str(_keys(tmp) / "site0.pub"),
        ],
        r"--authorized_keys \(SuperNode authentication\) needs TLS",
    ),
    Case(
        "authorized-key-not-a-key",
        lambda tmp: [
            "federate",
            "server",
            "--config",
            CONFIG,
            "--ssl_ca_certfile",
            __file__,
            "--ssl_certfile",
            __file__,
            "--ssl_keyfile",
            __file__,
            "--authorized_keys",
            __file__,
        ],
        r"--authorized_keys .*test_federation\.py: not an OpenSSH public key",
    ),
    Case(
        "keys-not-overwritten",
        lambda tmp: (_keys(tmp), ["federate", "keys", str(tmp / "keys"), "--sites", "1"])[1],
        r"site0 exists; not overwriting a key",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_federation_case(case, tmp_path, capsys):
    replay(case, tmp_path, capsys)


# -- TLS on one side only, or the wrong CA: against a real listener ------------------------------
@pytest.fixture(scope="module")
def listeners(tmp_path_factory):
    """lbp's gateway twice on loopback: with TLS (a test CA) and plain."""
    from tests.federated.flower.test_flower import _certificates

    folder = tmp_path_factory.mktemp("tls")
    certs, other = _certificates(folder / "ok"), _certificates(folder / "other")
    tls_port, plain_port = free_port(), free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lbp_motion.federated.flower.gateway",
                "--listen",
                f"127.0.0.1:{tls_port}",
                "--upstream",
                "127.0.0.1:1",
                "--ssl-certfile",
                str(certs["cert"]),
                "--ssl-keyfile",
                str(certs["key"]),
                "--ssl-ca-certfile",
                str(certs["ca"]),
            ],
            cwd=ROOT,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lbp_motion.federated.flower.gateway",
                "--listen",
                f"127.0.0.1:{plain_port}",
                "--upstream",
                "127.0.0.1:1",
            ],
            cwd=ROOT,
        ),
    ]
    try:
        for port, proc in zip((tls_port, plain_port), procs):
            wait_for_port("127.0.0.1", port, 60, proc)
        yield {
            "tls": f"127.0.0.1:{tls_port}",
            "plain": f"127.0.0.1:{plain_port}",
            "ca": certs["ca"],
            "wrong_ca": other["ca"],
        }
    finally:
        for proc in procs:
            stop_process(proc, grace=3)


def test_tls_mismatch_and_wrong_ca_are_named_at_once(listeners, tmp_path, capsys):
    rows = [
        Case(
            "insecure-client-tls-server",
            _client(listeners["tls"], "--insecure"),
            r"did not answer plain HTTP: the server runs TLS; give --root_certificates",
        ),
        Case(
            "wrong-ca",
            _client(listeners["tls"], "--root_certificates", str(listeners["wrong_ca"])),
            r"certificate is not signed by --root_certificates .*\(wrong CA\?\)",
        ),
        Case(
            "tls-client-plain-server",
            _client(listeners["plain"], "--root_certificates", str(listeners["ca"])),
            r"does not speak TLS \(the server runs --insecure\?\)",
        ),
    ]
    for case in rows:
        started = time.monotonic()
        replay(case, tmp_path / case.id, capsys)
        assert time.monotonic() - started < 60, (
            f"{case.id}: took {time.monotonic() - started:.0f} s"
        )


def test_gateway_serves_only_the_fleet_api(listeners):
    import ssl

    import httpx

    url = f"https://{listeners['tls']}"
    with httpx.Client(verify=ssl.create_default_context(cafile=str(listeners["ca"]))) as client:
        for path in (
            "/v1/control/start-run",
            "/v1/control/list-runs",
            "/v1/runtime/acquire-task",
            "/docs",
            "/v1/fleet/../control/start-run",
        ):
            assert client.post(url + path, content=b"").status_code == 403, path
        assert (
            client.post(url + "/v1/fleet/get-run", content=b"").status_code == 502
        )  # forwarded (no SuperLink here)


# -- a left-out site is named by its client id and the reason ------------------------------------
class DeadGrid:
    """lbp's LoopbackGrid with message ids, and a dead node answered the way Flower's
    SuperLink answers for a lost node (an error reply from node 1)."""

    def __init__(self, settings, dead=frozenset()):
        from tests.federated.flower.test_flower import LoopbackGrid

        self.inner = LoopbackGrid(settings)
        self.dead = set(dead)

    def get_node_ids(self):
        return self.inner.get_node_ids()

    def send_and_receive(self, messages, *, timeout=None):
        from flwr.server.superlink.linkstate.utils import (
            create_message_error_unavailable_res_message,
        )

        messages = list(messages)
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = msg.object_id
        alive = [m for m in messages if int(m.metadata.dst_node_id) not in self.dead]
        replies = list(self.inner.send_and_receive(alive, timeout=timeout))
        for msg in messages:
            if int(msg.metadata.dst_node_id) in self.dead:
                replies.append(
                    create_message_error_unavailable_res_message(msg.metadata, "node_unavail")
                )
        return replies


def test_left_out_sites_are_named_by_client_id_and_reason(tmp_path, task_identity_fl):
    from lbp_motion.datasets.synthetic import generate_tug_dataset
    from lbp_motion.federated.flower.apps import run_federation
    from tests.conftest import TINY_TUG
    from tests.federated.flower.test_flower import SITES, SMALL

    data = generate_tug_dataset(tmp_path / "data", **TINY_TUG["sites"])
    common = [
        "--data.root",
        str(data),
        *SMALL,
        "--run.out_dir",
        str(tmp_path / "runs"),
        "--trainer.max_epochs",
        "2",
        "--trainer.strategy.init_args.min_clients",
        "1",
    ]
    settings = {}
    for k in range(3):
        extra = (
            ["--model.model.init_args.d_model", "32"] if k == 2 else []
        )  # site 2's config differs
        path = tmp_path / f"client{k}.json"
        path.write_text(
            json.dumps(
                {
                    "config": CONFIG,
                    "client_id": k,
                    "work_dir": str(tmp_path / f"site{k}"),
                    "overrides": [*common, "--data.train_sites", f"[{SITES[k]}]", *extra],
                }
            )
        )
        settings[10 + k] = path  # node ids other than the client ids
    run_dir = tmp_path / "run" / "version_0"
    server = {"config": CONFIG, "overrides": common, "run_dir": str(run_dir), "resume": False}
    grid = DeadGrid(settings)
    run_federation(grid, server)  # round 0: site 2 refuses the weights; round 1 likewise
    with open(run_dir / "rounds.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["failed"] for r in rows] == ["2", "2"] and [r["failed_nodes"] for r in rows] == [
        "12",
        "12",
    ]
    assert "shape mismatch" in rows[0]["left_out"] and "d_model" in rows[0]["left_out"]
    replies = [
        json.loads(line) for line in (run_dir / "flower" / "replies.jsonl").read_text().splitlines()
    ]
    site2 = [r for r in replies if r["client"] == 2]
    assert len(site2) == 2 and all(
        r["node"] == 12 and "shape mismatch" in r["left_out"] for r in site2
    )
    assert {(r["node"], r["client"]) for r in replies} == {(10, 0), (11, 1), (12, 2)}

    # a node that dies after round 0: Flower's SuperLink answers for it from node 1; both files name it
    run_dir2 = tmp_path / "run2" / "version_0"
    server2 = dict(server, run_dir=str(run_dir2))
    grid2 = DeadGrid(settings)
    original = grid2.send_and_receive

    def die_after_first(messages, *, timeout=None):
        out = original(messages, timeout=timeout)
        grid2.dead = {11}
        return out

    grid2.send_and_receive = die_after_first
    run_federation(grid2, server2)
    with open(run_dir2 / "rounds.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[1]["failed"] == "1 2" and rows[1]["failed_nodes"] == "11 12"
    replies = [
        json.loads(line)
        for line in (run_dir2 / "flower" / "replies.jsonl").read_text().splitlines()
    ]
    dead = [r for r in replies if r["round"] == 1 and r["error"] and r["client"] == 1]
    assert len(dead) == 1 and dead[0]["node"] == 11  # not node 1, the SuperLink's own id


@pytest.fixture
def task_identity_fl(monkeypatch):
    from flwr.supercore.task_identity import TaskIdentity

    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
