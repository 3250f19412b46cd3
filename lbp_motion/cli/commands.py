"""The subcommands of ``lbp``, registered once, and the helpers their parsers share.

:data:`COMMANDS` names every subcommand with its one-line help and where it is
implemented (``"module:function"``); the entry point (:mod:`lbp_motion.cli`) builds
``lbp --help`` from it and imports a command's module only when that command runs, so
``lbp --help`` imports neither torch nor the optional extras (Flower, MediaPipe).

One flag style everywhere, Lightning's ``--snake_case`` (``--out_dir``,
``--ckpt_path``, ``--config``). :func:`add_flag` keeps a renamed flag's old spellings
working for one release: using one prints one line to stderr (and raises a
:class:`DeprecationWarning`) naming the new spelling.

Standard library only, at the bottom of the layers: every command's module may import it.
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from dataclasses import dataclass
from typing import Any

#: ``lbp --help`` sections.
LIGHTNING = "Training and evaluation (LightningCLI; `lbp COMMAND --help` lists every option)"
OTHER = "Other commands"


@dataclass(frozen=True)
class Command:
    """One subcommand of ``lbp``.

    Attributes:
        name: what follows ``lbp``.
        target: ``"module:function"``; the function takes the arguments after the name
            and returns the exit status (a LightningCLI command's takes the name too
            and returns a run's result).
        help: one line for ``lbp --help``.
        group: :data:`LIGHTNING` or :data:`OTHER`.
        resume: how an interrupted run resumes, when the command does not say it itself.
    """

    name: str
    target: str
    help: str
    group: str = OTHER
    resume: str | None = None

    @property
    def lightning(self) -> bool:
        return self.group == LIGHTNING


COMMANDS: dict[str, Command] = {}


def register(name: str, target: str, help: str, **kwargs: Any) -> Command:
    """Add a subcommand to :data:`COMMANDS` (each name once)."""
    if name in COMMANDS:
        raise ValueError(f"lbp {name}: registered twice")
    COMMANDS[name] = command = Command(name, target, help, **kwargs)
    return command


_RUNS = "lbp_motion.runs:run_arguments"
register(
    "fit", _RUNS, "train, keep the best checkpoint by run.monitor, then test it", group=LIGHTNING
)
register("validate", _RUNS, "validate a checkpoint", group=LIGHTNING)
register("test", _RUNS, "test a checkpoint", group=LIGHTNING)
register(
    "predict",
    _RUNS,
    "per-window and per-recording predictions of a checkpoint over a DataModule",
    group=LIGHTNING,
)
register(
    "predict-file",
    "lbp_motion.cli.pose:cmd_predict_file",
    "severity and TUG time of one video or keypoint file (docs/pose.md)",
)
register(
    "tasks",
    "lbp_motion.cli:cmd_tasks",
    "list the tasks found through the lbp_motion.tasks entry points",
)
register(
    "cv",
    "lbp_motion.cli.cv:cmd_cv",
    "cross-validate a config by subject (leave-one-subject-out or K folds)",
)
register(
    "analyze",
    "lbp_motion.cli.analyze:cmd_analyze",
    "dataset and result analyses (exercise-correlation, anova)",
)
register(
    "extract-poses",
    "lbp_motion.cli.pose:cmd_extract_poses",
    "extract keypoints from a folder of videos (resumable)",
    resume="run the same command again: finished videos are kept and skipped",
)
register(
    "sweep",
    "lbp_motion.cli.sweep:cmd_sweep",
    "run a W&B sweep file locally and offline on W&B's sweep engine (grid, random, bayes, hyperband early termination), resumable",
    resume=(
        "run the same command again: finished and stopped runs are kept, interrupted ones go on "
        "from their last.ckpt, and the sweep continues"
    ),
)
register(
    "report",
    "lbp_motion.cli.report:cmd_report",
    "an HTML and Markdown report of run directories, with figures",
)
register(
    "federate",
    "lbp_motion.cli.federate:cmd_federate",
    "server or client of a real federation on Flower (docs/deploy.md), or the same apps on "
    "Flower's simulation engine (`simulate`, docs/federated.md)",
)


# -- old spellings ---------------------------------------------------------------------------------
def deprecated(old: str, new: str, what: str = "spelling") -> None:
    """Say that ``old`` still works for this release only and ``new`` replaces it."""
    print(
        f"lbp: warning: {old} is deprecated; use {new} (the old {what} goes in the next release)",
        file=sys.stderr,
        flush=True,
    )
    warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=3)


@functools.cache
def _renamed(action_class: type[argparse.Action]) -> type[argparse.Action]:
    """``action_class`` that warns when it is reached through an old spelling."""

    class Renamed(action_class):  # type: ignore[misc, valid-type]
        old_spellings: tuple[str, ...] = ()

        def __call__(self, parser, namespace, values, option_string=None):
            if option_string in self.old_spellings:
                deprecated(option_string, self.option_strings[0])
            super().__call__(parser, namespace, values, option_string)

    Renamed.__name__ = f"Renamed{action_class.__name__}"
    return Renamed


def add_flag(
    parser: argparse.ArgumentParser, name: str, *old: str, **kwargs: Any
) -> argparse.Action:
    """``parser.add_argument(name, **kwargs)``, also reachable for one release as the
    old spellings ``old`` (which ``--help`` lists beside the help text, not as options)."""
    if old and kwargs.get("help") not in (None, argparse.SUPPRESS):
        kwargs["help"] += f" (formerly {', '.join(old)})"
    action = parser.add_argument(name, *old, **kwargs)
    if old:
        action.__class__ = _renamed(type(action))
        action.old_spellings = old  # type: ignore[attr-defined]
        action.option_strings = [name]  # --help and error messages name the new spelling only
    return action


# -- flags several commands share ------------------------------------------------------------------
def add_config(
    parser: argparse.ArgumentParser,
    help: str = "config file (repeatable; later files override earlier ones)",
    required: bool = True,
) -> argparse.Action:
    """``--config FILE`` / ``-c FILE``, repeatable, as in ``lbp fit``."""
    return parser.add_argument("--config", "-c", action="append", required=required, help=help)


def add_out_dir(
    parser: argparse.ArgumentParser,
    help: str,
    default: str | None = None,
    old: tuple[str, ...] = (),
) -> argparse.Action:
    """``--out_dir DIR``, required when there is no default."""
    if default is not None:
        help += f" (default: {default})"
    return add_flag(
        parser,
        "--out_dir",
        *old,
        default=default,
        required=default is None,
        metavar="DIR",
        help=help,
    )


def add_ckpt_path(
    parser: argparse.ArgumentParser,
    help: str = "checkpoint of `lbp fit`",
    old: tuple[str, ...] = (),
) -> argparse.Action:
    """``--ckpt_path CKPT`` (required), as in ``lbp test``."""
    return add_flag(parser, "--ckpt_path", *old, required=True, metavar="CKPT", help=help)
