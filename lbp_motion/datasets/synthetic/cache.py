"""The cache of generated datasets: one folder per generator and settings, created
atomically so that concurrent processes (e.g. pytest-xdist workers) never see half a
dataset."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def default_cache_dir() -> Path:
    """``$LBP_CACHE/synthetic``, or ``~/.cache/lbp_motion/synthetic``."""
    base = os.environ.get("LBP_CACHE")
    if base:
        return Path(base) / "synthetic"
    return Path.home() / ".cache" / "lbp_motion" / "synthetic"


def ensure_generated(
    name: str, generate: Callable[[Path], object], cache_dir: str | Path | None = None
) -> Path:
    """Return ``<cache_dir>/<name>``, calling ``generate(folder)`` first if it is absent.

    Each caller generates into a temporary sibling and renames it into place; a loser
    of a race discards its copy. A folder that exists is complete.
    """
    parent = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = parent / name
    if target.is_dir():
        return target
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))
    try:
        generate(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
