"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every writer in lbp goes the same way, through :func:`atomic_write`:

1. a temporary file is made with :func:`tempfile.mkstemp` in the target's folder:
   a unique name (concurrent writers never share one) on the same file system (so the
   rename below is atomic); the folder is created first when it is missing;
2. the content is written to it (``write(tmp_path)``);
3. it takes the target's permissions when the target exists, else those of a file
   made with ``open`` (``0666`` less the umask, not ``mkstemp``'s owner-only ``0600``:
   a run folder shared by a team stays readable), then ``os.replace`` puts it over the
   target.

On any error, including ``KeyboardInterrupt``, the temporary file is removed and the
target is left as it was. Nothing is ``fsync``-ed (none of the writers ever did): a
killed process never leaves half a file, a crash of the operating system may lose the
newest content.

:func:`write_bytes`, :func:`write_text` and :func:`write_json` cover the common cases;
for anything else (``torch.save``, ``numpy.savez``, a CSV writer, a zip file, a video
container) pass a callback that writes the path it is given.

This module imports nothing from lbp_motion, so every layer may use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "write_bytes", "write_json", "write_text"]


def _umask() -> int:
    mask = os.umask(0o022)  # read by setting; put back at once (at import: one thread)
    os.umask(mask)
    return mask


#: Permissions of a new file, as ``open`` would create it.
NEW_FILE_MODE = 0o666 & ~_umask()


def atomic_write(
    path: str | os.PathLike, write: Callable[[Path], object], *, suffix: str = ".tmp"
) -> Path:
    """Call ``write(tmp)`` with a fresh temporary path beside ``path``, then replace
    ``path`` by it; returns ``path``. ``suffix`` ends the temporary name, for writers
    that pick the format by the file ending (e.g. ``".tmp.mp4"``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else NEW_FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path`` atomically by ``data``."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Replace ``path`` atomically by ``text`` (line endings written as given)."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding=encoding, newline="") as fh:
            fh.write(text)

    return atomic_write(path, write)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Replace ``path`` atomically by ``data`` as JSON: indented by 2, keys sorted, a
    final newline (the layout of ``metrics.json`` and every other JSON file lbp writes).
    Nothing is replaced when ``data`` cannot be serialised."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
