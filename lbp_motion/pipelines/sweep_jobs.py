"""Several ``lbp`` runs at a time, each in its own process (``lbp sweep --jobs N``).

A run list of 36 short runs on a machine with many cores (or one GPU that a small
model leaves mostly idle) finishes several times sooner when N runs share it. Each run
is ``python -m lbp_motion ARGS`` in a child process whose output goes to its own log
file; the caller learns each exit status as the run ends (and keeps the sweep's state:
this module knows nothing of sweeps). On an interrupt (Ctrl-C, SIGTERM) the running
children are stopped (they save ``last.ckpt`` as any interrupted ``lbp fit`` does) and
the interrupt is raised again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

#: the program each job runs, its arguments after these
PROGRAM: tuple[str, ...] = (sys.executable, "-m", "lbp_motion")
#: seconds between looks at the running children
POLL_SECONDS = 0.5
#: seconds a stopped child has to save its state before it is killed
STOP_SECONDS = 60.0


#: yielded by a job iterator instead of a job: nothing can start yet (a job waits for a
#: running one); :func:`run_jobs` asks again after the next look at the running jobs
WAIT = object()


@dataclass
class Job:
    """One run: its key (the caller's), its ``lbp`` arguments and its log file."""

    key: Hashable
    argv: Sequence[str]
    log_file: Path
    env: Mapping[str, str] | None = None  # extra environment variables


def _start(job: Job) -> tuple[subprocess.Popen, IO]:
    job.log_file.parent.mkdir(parents=True, exist_ok=True)
    log = open(job.log_file, "w")
    env = {**os.environ, **(job.env or {})}
    process = subprocess.Popen(
        [*PROGRAM, *job.argv],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    return process, log


def _stop(running: dict[Hashable, tuple[subprocess.Popen, IO]]) -> None:
    for process, _ in running.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for process, log in running.values():
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def run_jobs(
    jobs: Iterable[Job | object],
    parallel: int,
    on_start: Callable[[Job], None],
    on_done: Callable[[Job, int], None],
) -> None:
    """Run ``jobs`` in order, at most ``parallel`` at a time; ``on_start(job)`` just
    before a job starts, ``on_done(job, exit_status)`` as it ends. ``jobs`` is read
    lazily, one job as a slot frees (a generator may choose the next job from the
    results so far, or yield :data:`WAIT` until a running job has ended). On any
    exception (an interrupt too) the running children are stopped and it is raised
    again; the jobs that were running are those started but not reported done."""
    if parallel < 1:
        raise ValueError(f"parallel={parallel}; expected at least 1")
    pending = iter(jobs)
    exhausted = False
    running: dict[Hashable, tuple[subprocess.Popen, IO]] = {}
    by_key: dict[Hashable, Job] = {}
    try:
        while not exhausted or running:
            while not exhausted and len(running) < parallel:
                job = next(pending, None)
                if job is None:
                    exhausted = True
                    break
                if job is WAIT:
                    if not running:
                        raise RuntimeError("a job iterator waits while no job is running")
                    break
                by_key[job.key] = job
                on_start(job)
                running[job.key] = _start(job)
            time.sleep(POLL_SECONDS)
            for key, (process, log) in list(running.items()):
                status = process.poll()
                if status is not None:
                    log.close()
                    del running[key]
                    on_done(by_key[key], status)
    except BaseException:
        _stop(running)
        raise
