"""The SuperLink's Control API as ``lbp federate server`` uses it (on 127.0.0.1 only):
the Flower CLI connection that ``flwr run`` submits through (:func:`write_connection`),
and :class:`RunWatcher`, which registers the clinics' SuperNode keys and stops any run
this server did not submit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lbp_motion.federated.flower.processes import FederateError

CONNECTION_NAME = "lbp"


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
