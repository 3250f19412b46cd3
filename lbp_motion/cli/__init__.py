"""The ``lbp`` command: the entry point and nothing else.

Every subcommand is registered once in :data:`lbp_motion.cli.commands.COMMANDS` (name,
one-line help, ``"module:function"``); ``lbp --help`` is built from it and a command's
module is imported only when that command runs. ``lbp fit|validate|test|predict`` are
LightningCLI subcommands run through :func:`lbp_motion.runs.run_arguments` (the Python
API the other commands, the Flower apps and notebooks use too). No module of
lbp_motion imports this one.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Callable

from lbp_motion.cli.commands import COMMANDS, LIGHTNING, OTHER, Command, deprecated
from lbp_motion.errors import user_error
from lbp_motion.interrupts import Interrupted, exit_on_signals


def cmd_tasks(argv: list[str]) -> int:
    """``lbp tasks``: list the tasks found through the lbp_motion.tasks entry points."""
    from lbp_motion.tasks.registry import (
        registered_tasks,  # imports torch: only when `lbp tasks` runs
    )

    argparse.ArgumentParser(prog="lbp tasks", description=cmd_tasks.__doc__).parse_args(argv)
    tasks = registered_tasks()
    width = max((len(n) for n in tasks), default=4)
    for name, cls in tasks.items():
        summary = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        print(f"{name:<{width}}  {cls.__module__}.{cls.__qualname__}  {summary}")
    return 0


def usage() -> str:
    """``lbp --help``: the registered commands by group."""
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: lbp COMMAND [options]"]
    for group in (LIGHTNING, OTHER):
        lines += ["", f"{group}:"]
        lines += [f"  {c.name:<{width}}  {c.help}" for c in COMMANDS.values() if c.group == group]
    lines += [
        "",
        "Results go to runs/<name>/version_<n>/ (metrics.json, checkpoints/, config.yaml).",
    ]
    return "\n".join(lines)


def print_usage() -> None:
    print(usage())


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``lbp`` console script."""
    argv = list(sys.argv[1:] if args is None else args)
    # deprecations raised inside lightning.pytorch.cli itself: not actionable for users
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    if not argv or argv[0] in ("-h", "--help"):
        print_usage()
        return 0
    try:
        with exit_on_signals() as outermost:
            try:
                return _dispatch(argv)
            except Interrupted as stop:
                if not outermost:
                    raise
                command = COMMANDS.get(argv[0])
                if command is not None and command.resume:
                    stop.resume_with(command.resume)
                print(f"lbp: {stop.message()}", file=sys.stderr)
                return stop.status
    except Exception as err:
        problem = user_error(err)
        if problem is None:
            raise
        print(f"lbp: error: {problem}", file=sys.stderr)
        return 2


def _implementation(command: Command) -> Callable:
    """The function behind ``command``, its module imported now (the lazy registry)."""
    module, _, function = command.target.partition(":")
    return getattr(importlib.import_module(module), function)


def _dispatch(argv: list[str]) -> int:
    name, rest = argv[0], argv[1:]
    # the 0.x form `lbp predict PATH --ckpt CKPT`
    if name == "predict" and rest and not rest[0].startswith("-"):
        deprecated("`lbp predict PATH`", "`lbp predict-file PATH`", what="form")
        name = "predict-file"
    command = COMMANDS.get(name)
    if command is None and not name.startswith("-"):
        print(
            f"lbp: error: unknown command {name!r}; the commands are {', '.join(COMMANDS)} (lbp --help)",
            file=sys.stderr,
        )
        return 2
    if command is not None and not command.lightning:
        return _implementation(command)(rest)
    result = _implementation(command or COMMANDS["fit"])(
        argv
    )  # LightningCLI reports a misplaced option
    if result is not None:
        print(f"Results: {result.run_dir.resolve()}")
    return 0


_MOVED = {
    "LbpCLI": "runs",
    "RunOptions": "runs",
    "checkpoint_callbacks": "runs",
    "finish_wandb_run": "runs",
    "read_yaml": "config",
    "config_files": "config",
    "one_line_error": "config",
    "LbpArgumentParser": "config",
    "user_error": "errors",
}


def __getattr__(name: str):
    """Names that moved out of the entry point (0.x): importable from here for one more
    release, with a deprecation warning."""
    if name in _MOVED:
        where = f"lbp_motion.{_MOVED[name]}"
        warnings.warn(
            f"lbp_motion.cli.{name} moved to {where}.{name}; import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(where), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
