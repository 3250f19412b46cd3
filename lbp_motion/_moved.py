"""Old module names of lbp_motion 0.1, kept importable for one release.

0.2 moved modules into folders that each hold one concept (docs/architecture.md):
``lbp_motion.data`` became ``datasets/``, ``datamodules/``, ``transforms/`` and
``federated/``; metrics and thresholds moved from ``tasks/`` to ``evaluation/``; the
command-line front ends moved to ``cli/``. Configs, checkpoints and code that name an
old module (``class_path: lbp_motion.data.tug.TUGDataModule``) still load: importing
the old name returns the new module, with one :class:`DeprecationWarning` naming it.

:class:`MovedModules` is a meta path finder (:mod:`importlib.abc`) installed by
``lbp_motion/__init__.py``; it answers only for the names in :data:`MOVED` and
:data:`OLD_PACKAGES`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

#: old module -> new module (or the new modules that share its names)
MOVED: dict[str, str | tuple[str, ...]] = {
    "lbp_motion.data.format": "lbp_motion.datasets.format",
    "lbp_motion.data.layouts": "lbp_motion.datasets.layouts",
    "lbp_motion.data.normalize": "lbp_motion.datasets.normalize",
    "lbp_motion.data.windows": "lbp_motion.datasets.windows",
    "lbp_motion.data.splits": "lbp_motion.datasets.splits",
    "lbp_motion.data.synthetic": "lbp_motion.datasets.synthetic",
    "lbp_motion.data.synthetic.tug": "lbp_motion.datasets.synthetic.tug",
    "lbp_motion.data.synthetic.emopain": "lbp_motion.datasets.synthetic.emopain",
    "lbp_motion.data.synthetic.cache": "lbp_motion.datasets.synthetic.cache",
    "lbp_motion.data.streams": "lbp_motion.transforms.streams",
    "lbp_motion.data.augment": "lbp_motion.transforms.augment",
    "lbp_motion.data.balance": "lbp_motion.transforms.balance",
    "lbp_motion.data.base": "lbp_motion.datamodules.base",
    "lbp_motion.data.tug": "lbp_motion.datamodules.tug",
    # split in 0.2: the format, segments and features (datasets/) and the DataModule
    "lbp_motion.data.emopain": ("lbp_motion.datamodules.emopain", "lbp_motion.datasets.emopain"),
    "lbp_motion.data.federated": "lbp_motion.federated.clients",
    "lbp_motion.data.partition": "lbp_motion.federated.partition",
    "lbp_motion.tasks.metrics": "lbp_motion.evaluation.metrics",
    "lbp_motion.tasks.thresholds": "lbp_motion.evaluation.thresholds",
    "lbp_motion.tasks.decisions": "lbp_motion.evaluation.decisions",
    "lbp_motion.tasks.figures": "lbp_motion.evaluation.figures",
    "lbp_motion.results": "lbp_motion.evaluation.results",
    "lbp_motion.pose.predict": "lbp_motion.inference.predict",
    "lbp_motion.pose.cli": "lbp_motion.cli.pose",
    "lbp_motion.federated.flower.deploy_cli": "lbp_motion.cli.federate",
    "lbp_motion.commands": "lbp_motion.cli.commands",
    "lbp_motion.cv": "lbp_motion.pipelines.cv",
    "lbp_motion.sweep": "lbp_motion.pipelines.sweep",
    "lbp_motion.report": "lbp_motion.pipelines.report",
    "lbp_motion.anova": "lbp_motion.analysis.anova",
}

#: old package -> {name it exported: new module that defines it}
OLD_PACKAGES = {
    "lbp_motion.data": {
        "MotionDataModule": "lbp_motion.datamodules.base",
        "EmoPainDataModule": "lbp_motion.datamodules.emopain",
        "TUGDataModule": "lbp_motion.datamodules.tug",
        "PoseWindowDataset": "lbp_motion.datamodules.tug",
        **{
            name: "lbp_motion.datasets.format"
            for name in (
                "DataFormatError",
                "LabelRow",
                "Recording",
                "read_labels",
                "read_recording",
                "write_labels",
                "write_recording",
            )
        },
        **{name: "lbp_motion.datasets.layouts" for name in ("COCO17", "Layout", "get_layout")},
    },
}


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} moved to {new} in lbp_motion 0.2; the old name goes in 0.3",
        DeprecationWarning,
        stacklevel=3,
    )


def _forwarding(name: str, where) -> types.ModuleType:
    """A module object for an old name whose attributes now live in several modules:
    ``where(attr)`` names the module that defines ``attr`` (or None)."""
    module = types.ModuleType(name, f"Moved in lbp_motion 0.2: see {__name__}.")

    def __getattr__(attr: str):
        new = where(attr)
        if new is None:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        _warn(f"{name}.{attr}", f"{new}.{attr}")
        return getattr(importlib.import_module(new), attr)

    module.__getattr__ = __getattr__
    return module


def _old_package(name: str) -> types.ModuleType:
    """A package object for an old package: its submodules import through
    :data:`MOVED`, its attributes come from the modules now defining them."""
    module = _forwarding(name, OLD_PACKAGES[name].get)
    module.__path__ = []  # a package: ``import lbp_motion.data.tug`` asks the finders again
    return module


def _split_module(name: str) -> types.ModuleType:
    """A module object for an old module split in several (:data:`MOVED`'s tuples)."""
    modules = [importlib.import_module(new) for new in MOVED[name]]

    def where(attr: str) -> str | None:
        return next(
            (m.__name__ for m in modules if hasattr(m, attr) and not attr.startswith("__")), None
        )

    return _forwarding(name, where)


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module name as the module that now holds its code."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED or fullname in OLD_PACKAGES:
            return importlib.util.spec_from_loader(
                fullname, self, is_package=fullname in OLD_PACKAGES
            )
        return None

    def create_module(self, spec):
        if spec.name in OLD_PACKAGES:
            return _old_package(spec.name)
        if isinstance(MOVED[spec.name], tuple):
            return _split_module(spec.name)
        _warn(spec.name, MOVED[spec.name])
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module) -> None:
        pass  # the module was imported under its new name already


def install() -> None:
    """Put :class:`MovedModules` first on :data:`sys.meta_path` (once)."""
    if not any(isinstance(f, MovedModules) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModules())
