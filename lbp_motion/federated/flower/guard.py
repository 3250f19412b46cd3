"""A clinic's SuperNode that runs only the approved lbp app.

Flower 1.41's SuperNode runs the ClientApp of whatever Flower app bundle (FAB) a run on
its SuperLink names. Its own restriction, ``--trusted-entities`` (signed apps), needs a
SuperLink that vouches for the app's signature (``valid_license``), which the
open-source SuperLink does not: with it, every app is refused. So ``lbp federate
client`` starts the SuperNode through this module, which adds an allow-list of FAB
hashes: when a message of a run arrives whose app bundle's SHA-256 is not approved,
the SuperNode answers it with an error and never stores, installs or starts that app
(no ClientApp process, none of its code). The approved hash by default is the one of
the lbp app this installed ``lbp_motion`` writes (``lbp federate app``: a
``pyproject.toml`` naming ``lbp_motion``'s ServerApp and ClientApp and no code); a
site can approve more with ``--approve_app_hash``. Refusals are appended to
``<work dir>/refused-runs.jsonl`` and printed.

Run as ``python -m lbp_motion.federated.flower.guard --approved HASH[,HASH] [--log FILE]
-- FLOWER_SUPERNODE_ARGS``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time


def lbp_app_hash() -> str:
    """SHA-256 of the FAB that ``flwr run`` builds from the lbp app folder (Flower
    builds FABs reproducibly: fixed file dates, sorted files)."""
    from flwr.cli.build import build_fab_from_files

    from lbp_motion.federated.flower.deploy import APP_PYPROJECT

    fab, _ = build_fab_from_files({"pyproject.toml": APP_PYPROJECT.encode()})
    return hashlib.sha256(fab).hexdigest()


def install(approved: set[str], log_path: str | None) -> None:
    """Wrap Flower's SuperNode message intake: runs of other apps get an error reply."""
    from flwr.app import Error, Message
    from flwr.common.logger import log
    from flwr.supernode import start_client_internal as sci

    original = sci._pull_and_store_message

    class UnapprovedApp(Exception):
        pass

    def guarded(**kwargs):
        received: dict = {}
        receive, get_fab = kwargs["receive"], kwargs["get_fab"]

        def receive_and_keep():
            out = receive()
            received["message"] = out[0] if out else None
            return out

        def checked_get_fab(fab_hash: str, run_id: int):
            fab = get_fab(fab_hash, run_id)
            actual = hashlib.sha256(fab.content).hexdigest()
            if actual not in approved:
                raise UnapprovedApp(actual)
            return fab

        kwargs.update(receive=receive_and_keep, get_fab=checked_get_fab)
        try:
            return original(**kwargs)
        except UnapprovedApp as refused:
            message = received["message"]
            run_id = int(message.metadata.run_id)
            record = {
                "time": time.time(),
                "run_id": run_id,
                "fab_hash": str(refused),
                "message_type": message.metadata.message_type,
            }
            text = (
                f"lbp federate client: refused run {run_id}: its app (FAB sha256 {str(refused)[:16]}...) "
                "is not the approved lbp app; nothing of it was run"
            )
            print(text, file=sys.stderr, flush=True)
            log(40, text)
            if log_path:
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(record) + "\n")
            reply = Message(
                Error(code=403, reason="lbp: this site runs only the approved lbp app"),
                reply_to=message,
            )
            sci._insert_message(reply, kwargs["state"], kwargs["object_store"])
            return run_id

    sci._pull_and_store_message = guarded


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(prog="lbp-supernode")
    p.add_argument(
        "--approved", default="", help="comma-separated FAB sha256 hashes besides lbp's own app"
    )
    p.add_argument("--log", default=None, help="append refused runs to this JSON-lines file")
    args = p.parse_args(argv[:split])
    approved = {h.strip().lower() for h in args.approved.split(",") if h.strip()} | {lbp_app_hash()}
    install(approved, args.log)
    from flwr.supernode.cli.flower_supernode import flower_supernode

    sys.argv = ["flower-supernode", *argv[split + 1 :]]
    flower_supernode()
    return 0


if __name__ == "__main__":
    sys.exit(main())
