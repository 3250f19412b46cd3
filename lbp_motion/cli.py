"""The ``lbp`` command: LightningCLI in subclass mode plus a few extra subcommands.

Thin by design: it wires configs to classes. Logic that a test needs lives in the
modules it calls (``results``, ``tasks.registry``, ``data``).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from .errors import ConfigError, LbpError
from .interrupts import Interrupted, exit_on_signals
from .results import PredictionFiles, RunSummary, make_run_dir
from .tasks.base import BaseTask
from .tasks.registry import registered_tasks
from .training_plan import default_strategy
from .trust import check_class_paths, lbp_info, load_checkpoint


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


_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value",
          "- Expected a <class 'NoneType'>", "- Problem with given class_path", "Problem with given class_path",
          "tip:")


def one_line_error(message: str) -> str:
    """jsonargparse's nested, multi-line parse error as one line: the dotted field and the
    innermost reason (``model.lr: Not of type PositiveFloat: -0.001 does not conform ...``)."""
    keys: list[str] = []
    for key in re.findall(r'Parser key "([^"]+)"', message):
        if not keys or keys[-1] != key:
            keys.append(key)
    reasons = [ln.strip().lstrip("- ").strip() for ln in message.splitlines()
               if ln.strip() and "Parser key" not in ln and not ln.strip().startswith(_NOISE)]
    reason = reasons[0] if reasons else " ".join(message.split())
    given = re.findall(r"Given value: (.+)", message)
    if given:
        value = given[-1].strip()
        nested = re.fullmatch(r"NestedArg\(key='[^']*', val='(.*)'\)", value)
        value = nested.group(1) if nested else value
        if len(value) <= 80 and value not in reason:
            reason = f"{reason}, got {value}"
    return f"{'.'.join(keys)}: {reason}" if keys else reason


class LbpArgumentParser(LightningArgumentParser):
    """Parse errors as one line (no usage dump, no nested union report), exit status 2."""

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:
            return super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"{prog}: error: {one_line_error(message)} (see {prog} --help)\n")
        raise SystemExit(2)


class LbpCLI(LightningCLI):
    """LightningCLI with lbp_motion's defaults: any :class:`BaseTask` and any
    LightningDataModule by ``class_path``; run directories; metrics.json; CSV + W&B
    logging; best-checkpoint selection on a validation metric; test after fit."""

    def __init__(self, args: list[str] | None = None, trust: tuple[str, ...] = (), **kwargs: Any) -> None:
        self.run_dir: Path | None = None
        registered_tasks()  # import plugin tasks so configs may name them by class name
        if args is not None:  # e.g. lbp cv's DataModule built from the fold's arguments
            args, more = _pop_trust(list(args))
            trust = (*trust, *more)
        for path in config_files(sys.argv[1:] if args is None else args):
            check_class_paths(read_yaml(path), path, extra=trust)
        try:
            self._init(args, **kwargs)
        except Interrupted as stop:
            last = self.run_dir / "checkpoints" / "last.ckpt" if self.run_dir else None
            if last is not None and last.is_file():
                stop.resume_with(f"resume with the same command and --ckpt_path {last}")
            self._remove_run_dir_without_results()
            raise
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
            parser_class=LbpArgumentParser,
            args=args,
            **kwargs,
        )

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        # checkpoints are read as tensors and plain data only (lbp_motion.trust)
        parser.set_defaults(weights_only=True)
        if subcommand == "fit":
            parser.add_argument(
                "--test_after_fit",
                type=bool,
                default=True,
                help="After fitting, test the best checkpoint when the data have a test split.",
            )
        return parser

    def instantiate_classes(self) -> None:
        """A constructor that rejects a config value (``ValueError``/``TypeError``, e.g. a
        model width of -5) is a config error: one line naming the class, not a traceback."""
        try:
            super().instantiate_classes()
        except LbpError:
            raise
        except (ValueError, TypeError) as err:
            problem = user_error(err)
            if problem is not None:
                raise problem from None
            root, seen = err, set()
            while (root.__cause__ or root.__context__) is not None and id(root) not in seen:
                seen.add(id(root))
                root = root.__cause__ or root.__context__
            text = " ".join(str(root).split())[:300]
            raise ConfigError(f"a class in the config rejected its arguments: {type(root).__name__}: {text}") from err

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        if config is None:
            return
        if config.get("weights_only", True) is not True:
            raise ConfigError(
                f"weights_only = {config.get('weights_only')!r}: lbp reads checkpoints as tensors and plain "
                "data only (weights_only: true); a checkpoint that needs more is refused"
            )
        trainer = config.get("trainer") or {}
        for key in ("max_epochs", "max_steps"):
            value = trainer.get(key)
            if value is not None and (value < -1 or value == 0):
                raise ConfigError(f"trainer.{key} = {value}: expected a positive number (or -1: no limit)")

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
        # a callback that is a stage of the training plan (e.g. DifferentialPrivacy) needs a strategy that applies it
        given = trainer_config.get("callbacks") or []
        trainer_config["strategy"] = default_strategy(
            trainer_config.get("strategy", "auto"), [*(given if isinstance(given, list) else [given]), *callbacks],
            trainer_config.get("devices", "auto"),
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


def config_files(argv: list[str]) -> list[str]:
    """The ``--config``/``-c`` files named in ``argv``, in order."""
    out = []
    for i, a in enumerate(argv):
        if a in ("--config", "-c") and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif a.startswith("--config="):
            out.append(a.split("=", 1)[1])
    return out


def read_yaml(path: str | Path) -> Any:
    """A YAML config file's data, or one clear error naming the file and the problem."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); save the config as UTF-8") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None


def _option(argv: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``argv`` (the last one)."""
    value = None
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(name + "="):
            value = a.split("=", 1)[1]
    return value


def _pop_trust(argv: list[str]) -> tuple[list[str], tuple[str, ...]]:
    """Take ``--trust_module PACKAGE`` (repeatable) out of ``argv``."""
    rest, trust, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--trust_module" and i + 1 < len(argv):
            trust.append(argv[i + 1])
            i += 2
            continue
        if a.startswith("--trust_module="):
            trust.append(a.split("=", 1)[1])
        else:
            rest.append(a)
        i += 1
    return rest, tuple(trust)


def _config_from_checkpoint(argv: list[str], trust: tuple[str, ...] = ()) -> list[str]:
    """Check ``--ckpt_path`` (a local, readable lbp checkpoint) and, for ``lbp
    validate|test|predict --ckpt_path X`` without ``--config``, write the config stored
    in X to a temporary file and put ``--config`` that file in front. The caller
    removes it."""
    if not argv or argv[0] not in CHECKPOINT_COMMANDS | {"fit"} or "-h" in argv or "--help" in argv:
        return argv
    has_config = bool(config_files(argv))
    ckpt = _option(argv, "--ckpt_path")
    if ckpt is None or ckpt in ("best", "last", "null", "hpc", "registry"):
        if not has_config and argv[0] in CHECKPOINT_COMMANDS:
            raise ConfigError(
                f"lbp {argv[0]}: give --ckpt_path CHECKPOINT (the config stored in it is used) or --config FILE"
            )
        return argv
    if "://" in ckpt:
        raise ConfigError(f"--ckpt_path {ckpt}: lbp reads local checkpoint files only; download it first")
    ckpt_data = load_checkpoint(ckpt)
    info = lbp_info(ckpt_data, ckpt)
    stored = info.get("config")
    if has_config:
        return argv
    if not isinstance(stored, str) or not stored.strip():
        raise ConfigError(f"{ckpt}: the checkpoint stores no config; give --config FILE too")
    import yaml

    try:
        config = yaml.safe_load(stored)
    except yaml.YAMLError:
        config = None
    if not isinstance(config, dict):
        raise ConfigError(f"{ckpt}: lbp_motion.config is not a YAML mapping; give --config FILE too")
    check_class_paths(config, f"{ckpt} (stored config)", extra=trust)
    for key in ("test_after_fit", "ckpt_path", "weights_only"):
        config.pop(key, None)
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
    argv, trust = _pop_trust(argv)
    expanded = _config_from_checkpoint(argv, trust)
    temp_config = expanded[2] if expanded is not argv else None
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    # the run directory already holds config.yaml and wandb/ when the CSV logger starts
    warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
    try:
        cli = LbpCLI(args=expanded, trust=trust)
    finally:
        if temp_config:
            Path(temp_config).unlink(missing_ok=True)
        finish_wandb_run()  # several runs in one process (lbp cv, lbp sweep, tests) each get their own
    if cli.run_dir is not None:
        print(f"Results: {cli.run_dir.resolve()}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
