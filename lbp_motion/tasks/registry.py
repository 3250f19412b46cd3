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

import lightning.pytorch as pl
import torch

from lbp_motion.trust import UntrustedFileError, check_class_paths, lbp_info, load_checkpoint

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

            warnings.warn(
                f"task plugin {ep.name!r} ({ep.value}) failed to load: {err}", stacklevel=2
            )
    return out


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The self-description ``lbp_motion`` stores in a checkpoint (version, task, data).
    The file is read with :func:`lbp_motion.trust.load_checkpoint` (no code runs)."""
    return dict(lbp_info(load_checkpoint(path), path))


def load_task(
    path: str | Path, map_location: str | torch.device = "cpu", trust: tuple[str, ...] = ()
):
    """Load a task from a checkpoint alone: the task class, its hyperparameters and its
    data description all travel in the file.

    Safe on a file from anyone: tensors and plain data only (``weights_only=True``), and
    the task class and every ``class_path`` in the stored hyperparameters must come from
    a trusted package (:mod:`lbp_motion.trust`; ``trust`` adds packages).
    """
    import importlib

    ckpt = load_checkpoint(path, map_location=map_location)
    info = lbp_info(ckpt, path)
    task = info.get("task")
    if not isinstance(task, str) or "." not in task:
        raise UntrustedFileError(f"{path}: lbp_motion.task = {task!r} is not a dotted class name")
    check_class_paths(
        {"lbp_motion": {"class_path": task}, "hyper_parameters": ckpt.get("hyper_parameters")},
        path,
        extra=trust,
    )
    module, _, name = task.rpartition(".")
    cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and issubclass(cls, pl.LightningModule)):
        raise UntrustedFileError(
            f"{path}: lbp_motion.task = {task!r} is not a LightningModule class"
        )
    return cls.load_from_checkpoint(path, map_location=map_location, weights_only=True)
