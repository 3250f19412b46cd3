"""The ``lbp`` command: LightningCLI in subclass mode plus a few extra subcommands.

Thin by design: it wires configs to classes. Logic that a test needs lives in the
modules it calls (``results``, ``tasks.registry``, ``data``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from .errors import LbpError
from .results import PredictionFiles, RunSummary, make_run_dir
from .tasks.base import BaseTask
from .tasks.registry import registered_tasks


@dataclass
class RunOptions:
    """Where a run's results go and what it logs.

    Attributes:
        out_dir: parent of all run directories.
        name: experiment name; default: the config file's stem (else the task's name).
        wandb: ``offline`` (default; sync later with ``wandb sync``), ``online`` (after
            ``wandb login``) or ``disabled``. Applies when ``trainer.logger`` is unset.
        wandb_project: W&B project name.
        monitor: validation metric that picks the best checkpoint (and early stopping).
        monitor_mode: ``max`` or ``min``.
        early_stopping_patience: stop after this many validations without improvement
            of ``monitor``; ``null`` turns early stopping off.
    """

    out_dir: str = "runs"
    name: str | None = None
    wandb: Literal["offline", "online", "disabled"] = "offline"
    wandb_project: str = "lbp_motion"
    monitor: str = "val/f1_macro"
    monitor_mode: Literal["max", "min"] = "max"
    early_stopping_patience: int | None = None


def checkpoint_callbacks(dirpath: Path, monitor: str, mode: str) -> list[ModelCheckpoint]:
    """``best-epochNNN.ckpt`` (the best by ``monitor``; the Trainer's checkpoint_callback,
    used by ``ckpt_path="best"``) and ``last.ckpt``, rewritten every epoch for resuming.

    Two callbacks because Lightning 2.6's ``save_last`` rewrites last.ckpt only in epochs
    that also saved a best checkpoint when it saves at the end of training epochs.
    """
    best = ModelCheckpoint(
        dirpath=dirpath, filename="best-epoch{epoch:03d}", auto_insert_metric_name=False,
        monitor=monitor, mode=mode, save_top_k=1,
    )
    last = ModelCheckpoint(
        dirpath=dirpath, filename="last", monitor=None, save_top_k=1, enable_version_counter=False,
    )
    return [best, last]


def _data_spec(datamodule: Any) -> dict[str, Any] | None:
    spec = getattr(datamodule, "spec", None)
    return dict(spec) if spec is not None else None


class LbpCLI(LightningCLI):
    """LightningCLI with lbp_motion's defaults: any :class:`BaseTask` and any
    LightningDataModule by ``class_path``; run directories; metrics.json; CSV + W&B
    logging; best-checkpoint selection on a validation metric; test after fit."""

    def __init__(self, args: list[str] | None = None, **kwargs: Any) -> None:
        self.run_dir: Path | None = None
        registered_tasks()  # import plugin tasks so configs may name them by class name
        try:
            self._init(args, **kwargs)
        except BaseException:
            self._remove_run_dir_without_results()
            raise

    def _remove_run_dir_without_results(self) -> None:
        """A run that failed before producing anything leaves no folder behind."""
        run = self.run_dir
        if run is None or not run.is_dir():
            return
        keep = {"metrics.json", "checkpoints", "predictions.csv"}
        if not any(p.name in keep for p in run.iterdir()):
            import shutil

            shutil.rmtree(run, ignore_errors=True)

    def _init(self, args: list[str] | None, **kwargs: Any) -> None:
        super().__init__(
            BaseTask,
            pl.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            args=args,
            **kwargs,
        )

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "fit":
            parser.add_argument(
                "--test_after_fit",
                type=bool,
                default=True,
                help="After fitting, test the best checkpoint when the data have a test split.",
            )
        return parser

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_class_arguments(RunOptions, "run")
        parser.link_arguments("data", "model.init_args.data_spec", compute_fn=_data_spec, apply_on="instantiate")

    # -- trainer with run directory, loggers and callbacks ------------------------------
    def _run_name(self, config: Any) -> str:
        if config.run.name:
            return config.run.name
        cfg_files = config.get("config") or []
        if cfg_files:
            return Path(str(cfg_files[-1])).stem
        return type(self.model).__name__.lower()

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        if self.subcommand is None:  # LbpCLI(run=False): classes only, no run directory
            return super().instantiate_trainer(**kwargs)
        config = self.config[self.subcommand]
        opts = config.run
        name = self._run_name(config)
        config.run.name = name  # stored with the config in checkpoints and config.yaml
        self.run_dir = make_run_dir(opts.out_dir, name)
        version = int(self.run_dir.name.split("_")[1])

        trainer_config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        if trainer_config.get("logger") in (None, True):
            loggers: list[Any] = [CSVLogger(save_dir=opts.out_dir, name=name, version=version)]
            if opts.wandb != "disabled":
                finish_wandb_run()  # a run left open in this process would swallow this one's logs
                loggers.append(
                    WandbLogger(
                        project=opts.wandb_project,
                        name=f"{name}/version_{version}",
                        save_dir=str(self.run_dir),
                        offline=opts.wandb == "offline",
                    )
                )
            trainer_config["logger"] = loggers
        if trainer_config.get("default_root_dir") is None:
            trainer_config["default_root_dir"] = str(self.run_dir)

        callbacks: list[Any] = [self._get(self.config_init, c) for c in self._parser(self.subcommand).callback_keys]
        config_yaml = self._parser(self.subcommand).dump(config)
        callbacks.append(RunSummary(self.run_dir, config_yaml=config_yaml))
        if self.subcommand == "predict":
            callbacks.append(PredictionFiles(self.run_dir))
        if self.subcommand == "fit" and trainer_config.get("enable_checkpointing", True) is not False:
            given = trainer_config.get("callbacks") or []
            if not any(isinstance(c, ModelCheckpoint) for c in given):
                callbacks.extend(checkpoint_callbacks(self.run_dir / "checkpoints", opts.monitor, opts.monitor_mode))
        if self.subcommand == "fit" and opts.early_stopping_patience is not None:
            callbacks.append(
                EarlyStopping(monitor=opts.monitor, mode=opts.monitor_mode, patience=opts.early_stopping_patience)
            )
        return self._instantiate_trainer(trainer_config, callbacks)

    def after_fit(self) -> None:
        if not self.config.fit.get("test_after_fit", True):
            return
        dm = self.datamodule
        if hasattr(dm, "has_split") and not dm.has_split("test"):
            print("lbp: the data have no test split; skipping the test after fit")
            return
        best = getattr(self.trainer.checkpoint_callback, "best_model_path", "") or None
        self.trainer.test(self.model, datamodule=dm, ckpt_path=best if best else None)


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
CHECKPOINT_COMMANDS = {"validate", "test", "predict"}

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


def user_error(err: BaseException) -> LbpError | None:
    """The :class:`LbpError` behind ``err``, if any (jsonargparse wraps errors raised
    while it instantiates classes)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, LbpError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _config_from_checkpoint(argv: list[str]) -> list[str]:
    """``lbp predict --ckpt_path X`` without ``--config``: write the config stored in X
    to a temporary file and put ``--config`` that file in front. The caller removes it."""
    if not argv or argv[0] not in CHECKPOINT_COMMANDS or any(a in ("--config", "-c") or a.startswith("--config=") for a in argv):
        return argv
    ckpt = None
    for i, a in enumerate(argv):
        if a == "--ckpt_path" and i + 1 < len(argv):
            ckpt = argv[i + 1]
        elif a.startswith("--ckpt_path="):
            ckpt = a.split("=", 1)[1]
    if not ckpt or not Path(ckpt).is_file():
        return argv
    stored = torch.load(ckpt, map_location="cpu", weights_only=False).get("lbp_motion", {}).get("config")
    if not stored:
        return argv
    import yaml

    config = yaml.safe_load(stored)
    config.pop("test_after_fit", None)
    config.pop("ckpt_path", None)
    for key in ("callbacks", "logger"):
        (config.get("trainer") or {}).pop(key, None)
    fd, path = tempfile.mkstemp(prefix="lbp-ckpt-config-", suffix=".yaml")
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(config, fh)
    return [argv[0], "--config", path, *argv[1:]]


def finish_wandb_run() -> None:
    """Close this process's open W&B run, if any: Lightning's WandbLogger reuses an open
    ``wandb.run``, so the next ``lbp`` run in the same process would log into it."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``lbp`` console script."""
    argv = list(sys.argv[1:] if args is None else args)
    # deprecations raised inside lightning.pytorch.cli itself: not actionable for users
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    if not argv or argv[0] in ("-h", "--help"):
        print_usage()
        return 0
    try:
        return _dispatch(argv)
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
    expanded = _config_from_checkpoint(argv)
    temp_config = expanded[2] if expanded is not argv else None
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    # the run directory already holds config.yaml and wandb/ when the CSV logger starts
    warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
    try:
        cli = LbpCLI(args=expanded)
    finally:
        if temp_config:
            Path(temp_config).unlink(missing_ok=True)
        finish_wandb_run()  # several runs in one process (lbp cv, lbp sweep, tests) each get their own
    if cli.run_dir is not None:
        print(f"Results: {cli.run_dir.resolve()}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
