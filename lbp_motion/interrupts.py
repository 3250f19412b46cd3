"""Exit statuses a scheduler can trust when ``lbp`` is stopped by a signal.

Python turns SIGINT into ``KeyboardInterrupt``, which Lightning answers with exit
status 1, and Lightning answers SIGTERM by raising ``SIGTERMException``, a
``SystemExit`` with no status (0: "success"). :func:`exit_on_signals` replaces both
with :class:`Interrupted`, which every layer lets through (it is not an
``Exception``), and ``lbp``'s entry point turns it into status 128 + signal with one
line saying how to resume. A command that knows how it resumes says so with
:meth:`Interrupted.resume_with`; the outermost command speaks last.

Checkpoints stay valid: Lightning writes them to a temporary file and renames it, so
an interruption leaves the previous ``last.ckpt`` or the new one, never half of one.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HANDLED = (signal.SIGTERM, signal.SIGINT)
_active = False


class Interrupted(BaseException):
    """The process received SIGTERM or SIGINT; ``status`` is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.hint: str | None = None

    @property
    def status(self) -> int:
        return 128 + self.signum

    def resume_with(self, hint: str) -> Interrupted:
        """Record how to resume; returns self (``raise err.resume_with(...)``)."""
        self.hint = hint
        return self

    def message(self) -> str:
        how = self.hint or "nothing was saved to resume from: run the same command again"
        return f"interrupted by {signal.Signals(self.signum).name}; {how}"


def _raise(signum: int, frame) -> None:
    raise Interrupted(signum)


@contextmanager
def exit_on_signals() -> Iterator[bool]:
    """Within the block, SIGTERM and SIGINT raise :class:`Interrupted`; yields whether
    this block installed the handlers (the outermost one answers the signal). Nested use
    (an ``lbp`` command calling another in-process) and use outside the main thread
    (where Python cannot set handlers) change nothing and yield False."""
    global _active
    if _active or threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = {s: signal.getsignal(s) for s in HANDLED}
    for s in HANDLED:
        signal.signal(s, _raise)
    _active = True
    try:
        yield True
    finally:
        _active = False
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def resume_hint(hint: str) -> Iterator[None]:
    """An :class:`Interrupted` leaving the block says ``hint`` (how this command resumes)."""
    try:
        yield
    except Interrupted as stop:
        raise stop.resume_with(hint) from None
