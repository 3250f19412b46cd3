"""The reliability table's runner: each case is an input or fault and the one-line
error (or behaviour) ``lbp`` must answer it with.

A case builds its inputs under a temporary folder, runs ``lbp`` in-process through
:func:`lbp_motion.cli.main` (as the console script does, ``SystemExit`` included), and
checks the exit status and stderr: no traceback, and the last non-empty line of stderr
matches the expected message (a regular expression). Modules ``test_*.py`` beside this
file hold the tables, one per area (data inputs, configs and checkpoints, federation),
so that every future reader or command is checked the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Case:
    """One row: ``setup(tmp)`` writes the inputs and returns the ``lbp`` arguments.

    Attributes:
        id: short name shown by pytest.
        setup: builds the inputs under the given folder and returns argv for ``lbp``.
        message: regular expression the last stderr line must match (``re.search``).
        status: expected exit status (2: a user error, 1: some items failed, ...).
        check: optional extra check of the folder after the run (e.g. nothing lost).
    """

    id: str
    setup: Callable[[Path], list[str]]
    message: str
    status: int = 2
    check: Callable[[Path], None] | None = field(default=None)


def run_lbp(argv: list[str]) -> int:
    """``lbp ARGV`` in-process; the exit status as the shell would see it."""
    from lbp_motion.cli import main

    try:
        return int(main(argv) or 0)
    except SystemExit as stop:  # argparse / jsonargparse exit this way
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 1)


def last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _reattach_log_handlers() -> None:
    """Point logging handlers left on an earlier test's (closed) captured stderr at the
    current one; otherwise a log record prints a 'Logging error' traceback."""
    import logging
    import sys

    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and getattr(stream, "closed", False):
                handler.stream = sys.stderr


def replay(case: Case, tmp_path: Path, capsys) -> None:
    """Run one case and assert its status, its one-line message and its check."""
    argv = case.setup(tmp_path)
    _reattach_log_handlers()
    capsys.readouterr()
    status = run_lbp(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, f"{case.id}: traceback instead of one line:\n{err}"
    assert status == case.status, (
        f"{case.id}: exit status {status}, expected {case.status}; stderr:\n{err}"
    )
    line = last_line(err)
    assert re.search(case.message, line), (
        f"{case.id}: last stderr line {line!r} does not match {case.message!r}"
    )
    if case.check is not None:
        case.check(tmp_path)
