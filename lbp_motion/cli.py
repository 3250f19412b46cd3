"""The ``lbp`` command: the entry point and nothing else.

``lbp fit|validate|test|predict`` are LightningCLI subcommands run through
:func:`lbp_motion.runs.run_arguments` (the Python API the other commands, the Flower
apps and notebooks use too); the other subcommands are in the modules they name. No
module of lbp_motion imports this one.
"""

from __future__ import annotations

import os
import sys

from .errors import user_error
from .interrupts import Interrupted, exit_on_signals
from .runs import run_arguments
from .tasks.registry import registered_tasks


# -- extra subcommands -------------------------------------------------------------------
def cmd_tasks(argv: list[str]) -> int:
    """``lbp tasks``: list the tasks found through the lbp_motion.tasks entry points."""
    import argparse

    argparse.ArgumentParser(prog="lbp tasks", description=cmd_tasks.__doc__).parse_args(argv)
    tasks = registered_tasks()
    width = max((len(n) for n in tasks), default=4)
    for name, cls in tasks.items():
        summary = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        print(f"{name:<{width}}  {cls.__module__}.{cls.__qualname__}  {summary}")
    return 0


def cmd_cv(argv: list[str]) -> int:
    """``lbp cv``: cross-validate a config by subject (leave-one-subject-out or K folds)."""
    from .cv import cmd_cv as run

    return run(argv)


def cmd_analyze(argv: list[str]) -> int:
    """``lbp analyze``: dataset and result analyses (exercise-correlation, anova)."""
    from .analysis import cmd_analyze as run

    return run(argv)


def cmd_extract_poses(argv: list[str]) -> int:
    """``lbp extract-poses``: extract keypoints from a folder of videos (resumable)."""
    from .pose.cli import cmd_extract_poses as run

    return run(argv)


def cmd_sweep(argv: list[str]) -> int:
    """``lbp sweep``: run a W&B sweep file locally and offline (grid, random), resumable."""
    from .sweep import cmd_sweep as run

    return run(argv)


def cmd_report(argv: list[str]) -> int:
    """``lbp report``: an HTML and Markdown report of run directories, with figures."""
    from .report import cmd_report as run

    return run(argv)


def cmd_federate(argv: list[str]) -> int:
    """``lbp federate``: server or client of a real federation on Flower (docs/deploy.md)."""
    from .federated.flower.deploy import cmd_federate as run

    return run(argv)


EXTRA_COMMANDS = {"tasks": cmd_tasks, "cv": cmd_cv, "analyze": cmd_analyze, "extract-poses": cmd_extract_poses,
                  "sweep": cmd_sweep, "report": cmd_report, "federate": cmd_federate}
#: How an interrupted command resumes (``lbp fit`` and ``lbp cv`` name their files).
RESUME_HINTS = {
    "extract-poses": "run the same command again: finished videos are kept and skipped",
    "sweep": "run the same command again: finished runs are kept and the sweep continues",
}

USAGE = """usage: lbp COMMAND [options]

Training and evaluation (LightningCLI; `lbp COMMAND --help` lists every option):
  fit         train, keep the best checkpoint by run.monitor, then test it
  validate    validate a checkpoint
  test        test a checkpoint
  predict     per-window and per-recording predictions of a checkpoint;
              `lbp predict VIDEO_OR_KEYPOINT_FILE --ckpt CKPT`: one file (docs/pose.md)

Other commands:
{extra}
Results go to runs/<name>/version_<n>/ (metrics.json, checkpoints/, config.yaml).
"""


def print_usage() -> None:
    extra = "".join(
        f"  {name:<10}  {(fn.__doc__ or '').split(':', 1)[-1].strip().splitlines()[0]}\n"
        for name, fn in EXTRA_COMMANDS.items()
    )
    print(USAGE.format(extra=extra))


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
                if argv[0] in RESUME_HINTS:
                    stop.resume_with(RESUME_HINTS[argv[0]])
                print(f"lbp: {stop.message()}", file=sys.stderr)
                return stop.status
    except Exception as err:
        problem = user_error(err)
        if problem is None:
            raise
        print(f"lbp: error: {problem}", file=sys.stderr)
        return 2


def _dispatch(argv: list[str]) -> int:
    if argv[0] in EXTRA_COMMANDS:
        return EXTRA_COMMANDS[argv[0]](argv[1:])
    if argv[0] == "predict" and len(argv) > 1 and not argv[1].startswith("-"):
        from .pose.cli import cmd_predict_file  # `lbp predict VIDEO_OR_KEYPOINTS --ckpt CKPT`

        return cmd_predict_file(argv[1:])
    result = run_arguments(argv)
    if result is not None:
        print(f"Results: {result.run_dir.resolve()}")
    return 0


_MOVED = {"LbpCLI": "runs", "RunOptions": "runs", "checkpoint_callbacks": "runs", "finish_wandb_run": "runs",
          "read_yaml": "config", "config_files": "config", "one_line_error": "config",
          "LbpArgumentParser": "config", "user_error": "errors"}


def __getattr__(name: str):
    """Names that moved out of the entry point (0.x): importable from here for one more
    release, with a deprecation warning."""
    if name in _MOVED:
        import importlib
        import warnings

        where = f"lbp_motion.{_MOVED[name]}"
        warnings.warn(f"lbp_motion.cli.{name} moved to {where}.{name}; import it from there",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(where), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
