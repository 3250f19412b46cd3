"""Tasks found through the ``lbp_motion.tasks`` entry-point group, and checkpoint loading.

Another installed package adds a task by declaring, in its pyproject.toml::

    [project.entry-points."lbp_motion.tasks"]
    my_task = "my_package.tasks:MyTask"

``lbp tasks`` lists them, and configs may name them by class_path.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch

from lbp_motion.errors import LbpError

GROUP = "lbp_motion.tasks"


def registered_tasks() -> dict[str, type]:
    """Entry-point name -> task class, for every installed task (sorted by name).

    A plugin that fails to import is reported with its name instead of breaking
    every command.
    """
    out: dict[str, type] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            out[ep.name] = ep.load()
        except Exception as err:  # a broken plugin must not break `lbp`
            import warnings

            warnings.warn(f"task plugin {ep.name!r} ({ep.value}) failed to load: {err}", stacklevel=2)
    return out


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The self-description ``lbp_motion`` stores in a checkpoint (version, task, data)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return dict(ckpt.get("lbp_motion", {}))


def load_task(path: str | Path, map_location: str | torch.device = "cpu"):
    """Load a task from a checkpoint alone: the task class, its hyperparameters and its
    data description all travel in the file. Only load checkpoints you trust (they are
    unpickled)."""
    import importlib

    info = read_checkpoint_info(path)
    if "task" not in info:
        raise LbpError(f"{path}: not an lbp_motion checkpoint (no 'lbp_motion' entry)")
    module, _, name = info["task"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls.load_from_checkpoint(path, map_location=map_location, weights_only=False)
