"""Nothing that lbp loads from a file may run code.

Two doors let a file run code in a PyTorch Lightning project, and both are closed here:

* **Unpickling.** :func:`load_checkpoint` reads checkpoints with
  ``torch.load(weights_only=True)``: tensors, numbers, strings, lists, dicts and the few
  container types torch allows, nothing else. lbp's checkpoints hold nothing else (the
  config travels as YAML text), so no allow-list of extra classes is needed.
* **Imports named by data.** A ``class_path`` in a config file, or in the config and
  hyperparameters stored in a checkpoint, makes jsonargparse import that module (and
  run its top-level code). :func:`check_class_paths` admits only modules of the
  packages in :func:`trusted_packages`: lbp_motion, the frameworks it is built on
  (torch, Lightning, torchmetrics), and the packages of installed ``lbp_motion.tasks``
  entry points. A user who trusts another package says so explicitly with
  ``--trust_module PACKAGE`` on the command line or ``LBP_TRUSTED_MODULES=a,b``.

A file that fails either check is refused with one line naming the file and the value.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch

from lbp_motion.errors import LbpError

#: Packages whose classes configs and checkpoints may name.
BUILTIN_TRUSTED = ("lbp_motion", "torch", "lightning", "pytorch_lightning", "torchmetrics")
#: Environment variable: comma-separated extra packages the user trusts.
TRUST_ENV = "LBP_TRUSTED_MODULES"
#: Keys whose value jsonargparse or Lightning import.
IMPORT_KEYS = ("class_path", "_class_path", "_instantiator")
TASK_GROUP = "lbp_motion.tasks"


class UntrustedFileError(LbpError):
    """A config or checkpoint asks lbp to import code it was not told to trust, or is
    not a checkpoint at all."""


def trusted_packages(extra: Iterable[str] = ()) -> set[str]:
    """Top-level package names whose modules a ``class_path`` may name."""
    names = set(BUILTIN_TRUSTED)
    for ep in entry_points(group=TASK_GROUP):
        names.add(ep.value.split(":")[0].split(".")[0])
    names.update(p.strip() for p in os.environ.get(TRUST_ENV, "").split(",") if p.strip())
    names.update(p.strip() for p in extra if p.strip())
    return names


def _import_paths(data: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(field, dotted path) for every importable name in a nested config."""
    if isinstance(data, dict):
        for key, value in data.items():
            field = f"{where}.{key}" if where else str(key)
            if key in IMPORT_KEYS and isinstance(value, str):
                yield field, value
            else:
                yield from _import_paths(value, field)
    elif isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            yield from _import_paths(value, f"{where}[{i}]")


def check_class_paths(data: Any, source: str | Path, extra: Iterable[str] = ()) -> None:
    """Refuse ``data`` (a parsed config or checkpoint entry) if it names a class outside
    the trusted packages. A bare class name (``ClassificationTask``) is resolved by
    jsonargparse among already imported subclasses, so it imports nothing and passes."""
    trusted = trusted_packages(extra)
    for field, path in _import_paths(data):
        top = path.split(".")[0]
        if "." in path and top not in trusted:
            raise UntrustedFileError(
                f"{source}: {field} = {path!r} names code outside lbp_motion and its installed tasks; "
                f"lbp will not import it (if you trust package {top!r}, pass --trust_module {top} "
                f"or set {TRUST_ENV}={top})"
            )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint file's contents, unpickled with ``weights_only=True`` (no code runs).

    Raises one clear :class:`UntrustedFileError` for a missing, empty, truncated or
    foreign file, and for one that holds Python objects other than tensors and plain
    data (a crafted checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise UntrustedFileError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise UntrustedFileError(f"{path}: the checkpoint file is empty")
    if not zipfile.is_zipfile(path):  # torch.save's format since PyTorch 1.6
        raise UntrustedFileError(
            f"{path}: not a PyTorch checkpoint (not a zip archive: truncated, or another kind of file)"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()
        reason = next((ln.strip() for ln in first if "GLOBAL" in ln or "Unsupported" in ln), "")
        raise UntrustedFileError(
            f"{path}: refused: the checkpoint holds Python objects that lbp checkpoints never store "
            f"({reason or 'not tensors or plain data'}); it was not loaded"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        message = " ".join(str(err).split())[:160]
        raise UntrustedFileError(
            f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {message})"
        ) from None
    if not isinstance(ckpt, dict):
        raise UntrustedFileError(
            f"{path}: not a Lightning checkpoint (holds a {type(ckpt).__name__}, not a dict)"
        )
    return ckpt


def lbp_info(ckpt: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The ``lbp_motion`` self-description of a loaded checkpoint, or a clear error."""
    info = ckpt.get("lbp_motion")
    if not isinstance(info, dict):
        raise UntrustedFileError(f"{path}: not an lbp_motion checkpoint (no 'lbp_motion' entry)")
    return info
