"""The child processes of ``lbp federate``: free ports, waiting for a listener, Flower's
executables and their environment, and stopping children (SIGTERM, then SIGKILL).

Used by :mod:`.deploy`; the children stay in the command's process group unless they
get their own (:func:`own_group_dying_with_parent`, the SuperNode).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from lbp_motion.errors import LbpError


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
    """Return once ``host:port`` accepts a connection; raise :class:`FederateError` when
    ``process`` exits first or nothing listens after ``timeout`` seconds."""
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


def flower_bin(name: str) -> str:
    """A Flower console script next to this Python (the venv's), else on PATH."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def child_env(flwr_home: Path | None = None) -> dict[str, str]:
    """The environment of Flower's executables: no telemetry, no runtime dependency
    installation, ``FLWR_HOME`` when given, this Python's ``bin`` first on ``PATH`` (so
    Flower's own helpers, e.g. ``flower-superexec``, are the venv's)."""
    env = dict(os.environ)
    env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] = "1"
    if flwr_home is not None:
        env["FLWR_HOME"] = str(flwr_home)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def own_group_dying_with_parent() -> None:
    """In the child before exec: a new session, and SIGKILL when the parent dies (Linux)."""
    os.setsid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the caller's finally block still stops it
        pass
