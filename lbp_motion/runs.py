"""Runs from Python: build a run from config files plus overrides, fit, validate, test
or predict it, and get a :class:`RunResult` (run directory, metrics, best checkpoint,
prediction file). ``lbp fit|validate|test|predict``, ``lbp cv``, ``lbp sweep``, the
Flower apps and notebooks all go through this module; nothing builds an ``lbp``
command line to call itself.

    from lbp_motion import runs

    result = runs.fit("experiments/quickstart.yaml", overrides={"trainer.max_epochs": 2})
    result.run_dir, result.metrics["test/acc"], result.best_checkpoint
    preds = runs.predict(ckpt_path=result.best_checkpoint, overrides={"data.predict_split": "test"})
    preds.predictions  # predictions.csv

Configs are read by :class:`LbpCLI` (LightningCLI in subclass mode: any
:class:`~lbp_motion.tasks.base.BaseTask`, any LightningDataModule by ``class_path``),
exactly as on the command line: ``overrides`` are dotted keys of the config
(``data.root``, ``model.init_args.lr`` or the short ``model.lr``) with Python values;
``args`` are options as a user types them (``["--trainer.max_epochs", "5"]``), for
commands that forward what they do not know (``lbp cv``, ``lbp sweep``).
"""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from lbp_motion.checkpoints import RandomState, checkpoint_callbacks
from lbp_motion.config import (
    LbpArgumentParser,
    config_files,
    config_from_checkpoint,
    pop_trust,
    read_yaml,
)
from lbp_motion.errors import ConfigError, LbpError, user_error
from lbp_motion.evaluation.results import METRICS_FILE, PredictionFiles, RunSummary, make_run_dir
from lbp_motion.evaluation.sites import evaluate_by_site, write_site_table
from lbp_motion.federated.personalise import personalised_results
from lbp_motion.federated.strategy import FedAvgStrategy
from lbp_motion.interrupts import Interrupted
from lbp_motion.tasks.base import BaseTask
from lbp_motion.tasks.registry import registered_tasks
from lbp_motion.training_plan import default_strategy
from lbp_motion.trust import check_class_paths

ConfigFiles = str | Path | Sequence[str | Path]


@dataclass
class RunOptions:
    """Where a run's results go and what it logs.

    Attributes:
        out_dir: parent of all run directories; default: ``trainer.default_root_dir``
            when it is set (the Lightning convention), else ``runs``.
        name: experiment name; default: the config file's stem (else the task's name).
        wandb: ``offline`` (default; sync later with ``wandb sync``), ``online`` (after
            ``wandb login``) or ``disabled``. Applies when ``trainer.logger`` is unset.
        wandb_project: W&B project name.
        monitor: validation metric that picks the best checkpoint (and early stopping).
        monitor_mode: ``max`` or ``min``.
        early_stopping_patience: stop after this many validations without improvement
            of ``monitor``; ``null`` turns early stopping off.
    """

    out_dir: str | None = None
    name: str | None = None
    wandb: Literal["offline", "online", "disabled"] = "offline"
    wandb_project: str = "lbp_motion"
    monitor: str = "val/f1_macro"
    monitor_mode: Literal["max", "min"] = "max"
    early_stopping_patience: int | None = None


DEFAULT_OUT_DIR = "runs"


def resolve_out_dir(run: RunOptions, trainer: Mapping[str, Any]) -> RunOptions:
    """``run`` with ``out_dir`` decided: ``run.out_dir``, else ``trainer.default_root_dir``,
    else ``runs``; both set to different folders is one config error."""
    root = trainer.get("default_root_dir")
    if run.out_dir is not None and root is not None and Path(run.out_dir) != Path(root):
        raise ConfigError(
            f"run.out_dir = {run.out_dir!r} and trainer.default_root_dir = {str(root)!r}: runs go to one "
            "folder; set one of them"
        )
    run.out_dir = str(
        run.out_dir if run.out_dir is not None else root if root is not None else DEFAULT_OUT_DIR
    )
    return run


def _data_spec(datamodule: Any) -> dict[str, Any] | None:
    spec = getattr(datamodule, "spec", None)
    return dict(spec) if spec is not None else None


class LbpCLI(LightningCLI):
    """LightningCLI with lbp_motion's defaults: any :class:`BaseTask` and any
    LightningDataModule by ``class_path``; run directories; metrics.json; CSV + W&B
    logging; best-checkpoint selection on a validation metric; test after fit."""

    def __init__(
        self, args: list[str] | None = None, trust: tuple[str, ...] = (), **kwargs: Any
    ) -> None:
        self.run_dir: Path | None = None
        registered_tasks()  # import plugin tasks so configs may name them by class name
        if args is not None:  # e.g. lbp cv's DataModule built from the fold's arguments
            args, more = pop_trust(list(args))
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

    def _prepare_subcommand_parser(
        self, klass: type, subcommand: str, **kwargs: Any
    ) -> LightningArgumentParser:
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
            raise ConfigError(
                f"a class in the config rejected its arguments: {type(root).__name__}: {text}"
            ) from err

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
                raise ConfigError(
                    f"trainer.{key} = {value}: expected a positive number (or -1: no limit)"
                )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_class_arguments(RunOptions, "run")
        parser.link_arguments(
            "data", "model.init_args.data_spec", compute_fn=_data_spec, apply_on="instantiate"
        )

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
        trainer_config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        opts = resolve_out_dir(config.run, trainer_config)
        name = self._run_name(config)
        config.run.name = name  # stored with the config in checkpoints and config.yaml
        self.run_dir = make_run_dir(opts.out_dir, name)
        version = int(self.run_dir.name.split("_")[1])

        if trainer_config.get("logger") in (None, True):
            loggers: list[Any] = [CSVLogger(save_dir=opts.out_dir, name=name, version=version)]
            if opts.wandb != "disabled":
                finish_wandb_run()  # a run left open in this process would swallow this one's logs
                resumed = (
                    wandb_run_to_resume(config.get("ckpt_path"))
                    if self.subcommand == "fit" and opts.wandb == "online"
                    else None
                )
                loggers.append(
                    WandbLogger(
                        project=opts.wandb_project,
                        name=f"{name}/version_{version}",
                        save_dir=str(self.run_dir),
                        offline=opts.wandb == "offline",
                        id=resumed,  # None: a new W&B run
                    )
                )
            trainer_config["logger"] = loggers
        trainer_config["default_root_dir"] = str(
            self.run_dir
        )  # Lightning's own files go with the run's

        callbacks: list[Any] = [
            self._get(self.config_init, c) for c in self._parser(self.subcommand).callback_keys
        ]
        config_yaml = self._parser(self.subcommand).dump(config)
        callbacks.append(RunSummary(self.run_dir, config_yaml=config_yaml))
        if self.subcommand == "predict":
            callbacks.append(PredictionFiles(self.run_dir))
        if (
            self.subcommand == "fit"
            and trainer_config.get("enable_checkpointing", True) is not False
        ):
            callbacks.append(RandomState())  # a resumed fit draws as the uninterrupted one
            given = trainer_config.get("callbacks") or []
            if not any(isinstance(c, ModelCheckpoint) for c in given):
                callbacks.extend(
                    checkpoint_callbacks(
                        self.run_dir / "checkpoints", opts.monitor, opts.monitor_mode
                    )
                )
        if self.subcommand == "fit" and opts.early_stopping_patience is not None:
            callbacks.append(
                EarlyStopping(
                    monitor=opts.monitor,
                    mode=opts.monitor_mode,
                    patience=opts.early_stopping_patience,
                )
            )
        # a callback that is a stage of the training plan (e.g. DifferentialPrivacy) needs a strategy that applies it
        given = trainer_config.get("callbacks") or []
        trainer_config["strategy"] = default_strategy(
            trainer_config.get("strategy", "auto"),
            [*(given if isinstance(given, list) else [given]), *callbacks],
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
        results_by_site(self.trainer, self.model, dm, best)

    def after_test(self) -> None:
        results_by_site(self.trainer, self.model, self.datamodule, self.trainer.ckpt_path)


def results_by_site(
    trainer: pl.Trainer, model: pl.LightningModule, datamodule: Any, ckpt_path: str | None
) -> dict[str, float]:
    """After a test: the tested model on each site's held-out subjects and, for a
    federation with local layers or fine-tuning, each clinic's personalised model on
    its own (:mod:`lbp_motion.evaluation.sites`); added to metrics.json and written
    to ``sites.csv``. Nothing when the data name no sites or the task has no classes."""
    split_by_site = getattr(datamodule, "split_by_site", None)
    tests = split_by_site("test") if callable(split_by_site) else {}
    classes = getattr(model, "classes", None) if tests else None
    if not tests or not classes:
        return {}
    rule = getattr(model, "recording_rule", "mean_prob")
    batch_size = int(getattr(datamodule, "batch_size", 64))
    metrics, rows = evaluate_by_site(model, tests, classes, batch_size, rule)
    if isinstance(trainer.strategy, FedAvgStrategy):
        more, personal = personalised_results(
            trainer.strategy, model, datamodule, tests, classes, rule, ckpt_path
        )
        metrics.update(more)
        rows += personal
    for callback in trainer.callbacks:
        if isinstance(callback, RunSummary):
            callback.add(metrics)
            write_site_table(callback.run_dir, rows)
    return metrics


def wandb_run_to_resume(ckpt_path: str | Path | None) -> str | None:
    """The id of the online W&B run that logged the fit a checkpoint was saved by
    (``<run>/checkpoints/last.ckpt`` -> ``<run>/wandb/run-<time>-<id>``, the newest), so
    that ``lbp fit --ckpt_path`` with ``run.wandb: online`` goes on logging into it
    (Lightning's WandbLogger opens it with ``resume="allow"``); None when that run
    directory has no online W&B run. An offline run is not continued: W&B cannot resume
    offline runs, and syncing a second offline run with the same id replaces the first
    (wandb/wandb#4624, #5865), so a resumed offline fit logs a run of its own."""
    if ckpt_path is None:
        return None
    wandb_dir = Path(ckpt_path).parent.parent / "wandb"
    # run-<YYYYMMDD_HHMMSS>-<id>: sorts by time; an id set by the user may hold "-"
    online = sorted(d.name for d in wandb_dir.glob("run-*-*") if d.is_dir())
    return online[-1].split("-", 2)[2] if online else None


def finish_wandb_run() -> None:
    """Close this process's open W&B run, if any: Lightning's WandbLogger reuses an open
    ``wandb.run``, so the next ``lbp`` run in the same process would log into it."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


# -- the Python API ------------------------------------------------------------------------
@dataclass
class RunResult:
    """What a run left behind.

    Attributes:
        run_dir: ``<out_dir>/<name>/version_<n>`` (docs/metrics.md).
        metrics: ``metrics.json`` (fit, validate, test; empty for predict).
        best_checkpoint: the best checkpoint by ``run.monitor`` (fit), else None.
        predictions: ``predictions.csv`` (predict), else None.
    """

    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    best_checkpoint: Path | None = None
    predictions: Path | None = None

    @classmethod
    def from_run_dir(cls, run_dir: str | Path) -> RunResult:
        """Read a finished run's directory."""
        run_dir = Path(run_dir)
        metrics_file = run_dir / METRICS_FILE
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        best = metrics.get("best_checkpoint")
        predictions = run_dir / "predictions.csv"
        return cls(
            run_dir=run_dir,
            metrics=metrics,
            best_checkpoint=Path(best) if best else None,
            predictions=predictions if predictions.is_file() else None,
        )


@dataclass
class Built:
    """A run's objects, instantiated from its config without running anything
    (:func:`build`).

    Attributes:
        task: the LightningModule (``model`` section).
        datamodule: the LightningDataModule (``data`` section).
        trainer: the ``trainer`` section, its classes instantiated (strategy,
            callbacks, logger), as keyword arguments of a ``Trainer``.
        callbacks: the config's callbacks (``trainer.callbacks`` and top-level ones).
        sections: the extra sections asked for, instantiated (name -> object).
        run: the ``run`` section (:class:`RunOptions`).
        config_yaml: the whole config as ``lbp fit`` would store it.
        seed: ``seed_everything`` (0 when unset).
    """

    task: Any
    datamodule: Any
    trainer: dict[str, Any]
    callbacks: list[Any]
    sections: dict[str, Any]
    run: RunOptions
    config_yaml: str
    seed: int


def arguments(
    subcommand: str | None,
    config: ConfigFiles = (),
    overrides: Mapping[str, Any] | None = None,
    args: Sequence[str] = (),
    ckpt_path: str | Path | None = None,
) -> list[str]:
    """The parser arguments of a run: config files first, then ``args`` (options as
    typed on a command line), then ``overrides`` (dotted keys; a ``str`` value is read
    as on the command line, other values as YAML/JSON), then ``--ckpt_path``. Later
    settings win."""
    files = [config] if isinstance(config, (str, Path)) else list(config)
    out = [subcommand] if subcommand else []
    out += [a for f in files for a in ("--config", str(f))]
    out += [str(a) for a in args]
    for key, value in (overrides or {}).items():
        text = str(value) if isinstance(value, (str, Path)) else json.dumps(value)
        out.append(f"--{key}={text}")
    if ckpt_path is not None:
        out += ["--ckpt_path", str(ckpt_path)]
    return out


def run_arguments(argv: Sequence[str]) -> RunResult | None:
    """Run ``lbp SUBCOMMAND [options]`` (``argv`` without ``lbp``), in this process, as
    the ``lbp`` command does. Returns the run's result (None for ``--help`` or
    ``--print_config``, which make no run)."""
    argv, trust = pop_trust(list(argv))
    expanded = config_from_checkpoint(argv, trust)
    temp_config = expanded[2] if expanded is not argv else None
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    # the run directory already holds config.yaml and wandb/ when the CSV logger starts
    warnings.filterwarnings(
        "ignore", message="Experiment logs directory .* exists and is not empty"
    )
    try:
        cli = LbpCLI(args=expanded, trust=trust)
    finally:
        if temp_config:
            Path(temp_config).unlink(missing_ok=True)
        finish_wandb_run()  # several runs in one process (lbp cv, lbp sweep, tests) each get their own
    return RunResult.from_run_dir(cli.run_dir) if cli.run_dir is not None else None


def _run(
    subcommand: str,
    config: ConfigFiles,
    overrides: Mapping[str, Any] | None,
    args: Sequence[str],
    ckpt_path: str | Path | None,
) -> RunResult:
    result = run_arguments(arguments(subcommand, config, overrides, args, ckpt_path))
    if result is None:  # pragma: no cover - only --help / --print_config make no run
        raise ConfigError(f"{subcommand}: the arguments made no run")
    return result


def fit(
    config: ConfigFiles = (),
    *,
    overrides: Mapping[str, Any] | None = None,
    args: Sequence[str] = (),
    ckpt_path: str | Path | None = None,
    test_after_fit: bool = True,
) -> RunResult:
    """Train (``lbp fit``): the best checkpoint by ``run.monitor`` is kept and, when the
    data have a test split and ``test_after_fit``, tested. ``ckpt_path``: resume from
    a checkpoint (e.g. ``last.ckpt`` of an interrupted run)."""
    overrides = {**(overrides or {}), "test_after_fit": test_after_fit}
    return _run("fit", config, overrides, args, ckpt_path)


def validate(
    config: ConfigFiles = (),
    *,
    ckpt_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    args: Sequence[str] = (),
) -> RunResult:
    """Validate a checkpoint (``lbp validate``); without ``config``, its stored config."""
    return _run("validate", config, overrides, args, ckpt_path)


def test(
    config: ConfigFiles = (),
    *,
    ckpt_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    args: Sequence[str] = (),
) -> RunResult:
    """Test a checkpoint (``lbp test``); without ``config``, its stored config."""
    return _run("test", config, overrides, args, ckpt_path)


test.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported


def predict(
    config: ConfigFiles = (),
    *,
    ckpt_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    args: Sequence[str] = (),
) -> RunResult:
    """Per-window and per-recording predictions of a checkpoint on a DataModule split
    (``lbp predict``; ``data.predict_split``); :attr:`RunResult.predictions` is the file."""
    return _run("predict", config, overrides, args, ckpt_path)


def build(
    config: ConfigFiles = (),
    *,
    overrides: Mapping[str, Any] | None = None,
    args: Sequence[str] = (),
    sections: Mapping[str, type] | None = None,
) -> Built:
    """Instantiate a run's task, DataModule, trainer settings and callbacks from its
    config without running anything (no run directory, no Trainer). ``sections``:
    more top-level config sections, each read into a class (e.g. Flower's options)."""
    extra = dict(sections or {})

    class _Builder(LbpCLI):
        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            super().add_arguments_to_parser(parser)
            for name, cls in extra.items():
                parser.add_class_arguments(cls, name)

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            return None

    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    cli = _Builder(args=arguments(None, config, overrides, args), run=False)
    init = cli.config_init
    trainer = dict(cli._get(init, "trainer", default={}) or {})
    callbacks = [c for c in (trainer.get("callbacks") or []) if c is not None]
    callbacks += [cli._get(init, c) for c in cli._parser(None).callback_keys]
    seed = cli.config.get("seed_everything")
    return Built(
        task=cli.model,
        datamodule=cli.datamodule,
        trainer=trainer,
        callbacks=callbacks,
        sections={name: cli._get(init, name, default=None) for name in extra},
        run=resolve_out_dir(cli._get(cli.config, "run"), trainer),
        config_yaml=cli.parser.dump(cli.config),
        seed=int(seed) if isinstance(seed, int) else 0,
    )
