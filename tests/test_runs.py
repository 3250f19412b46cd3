"""The Python API of runs (lbp_motion.runs): what `lbp fit|test|predict` do, callable
from a notebook, returning the run's directory, metrics and files."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import pytest

from lbp_motion import runs
from lbp_motion.errors import ConfigError
from tests.conftest import ROOT, TINY_ARGS

ATTENTION_SMALL = str(ROOT / "experiments" / "tug" / "attention_small.yaml")


@pytest.mark.e2e
def test_fit_test_and_predict_from_python(tiny_tug, tmp_path):
    where = {"data.root": tiny_tug, "run.out_dir": tmp_path / "runs", "data.augment": None}
    fitted = runs.fit(ATTENTION_SMALL, args=TINY_ARGS, overrides={**where, "run.name": "api"})
    assert fitted.run_dir.parent == tmp_path / "runs" / "api"
    assert fitted.metrics == runs.RunResult.from_run_dir(fitted.run_dir).metrics
    assert fitted.best_checkpoint is not None and fitted.best_checkpoint.is_file()
    assert "test/accuracy" in fitted.metrics  # tested after fit: the tiny data have a test split

    # the best checkpoint, tested again from its stored config alone: the same numbers
    tested = runs.test(
        ckpt_path=fitted.best_checkpoint, overrides={"run.out_dir": tmp_path / "runs"}
    )
    assert tested.run_dir != fitted.run_dir
    assert tested.metrics["test/accuracy"] == pytest.approx(fitted.metrics["test/accuracy"])
    assert tested.metrics["test/f1_macro"] == pytest.approx(fitted.metrics["test/f1_macro"])

    predicted = runs.predict(
        ATTENTION_SMALL,
        args=TINY_ARGS,
        ckpt_path=fitted.best_checkpoint,
        overrides={**where, "data.predict_split": "test"},
    )
    assert predicted.predictions == predicted.run_dir / "predictions.csv"
    with open(predicted.predictions, newline="") as fh:
        rows = list(csv.DictReader(fh))
    accuracy = sum(r["predicted"] == r["label"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(fitted.metrics["test/accuracy"], abs=1e-6)


def test_overrides_win_over_args_and_config_files(tiny_tug):
    built = runs.build(
        ATTENTION_SMALL,
        args=["--model.lr", "0.5", "--data.root", str(tiny_tug)],
        overrides={
            "model.lr": 0.002,
            "data.classes": ["low", "medium", "high"],
            "data.augment": None,
        },
    )
    assert built.task.hparams.lr == pytest.approx(0.002)
    assert built.datamodule.classes == ["low", "medium", "high"]
    assert built.datamodule.augment_pipeline is None
    assert built.seed == 0 and built.run.monitor == "val/f1_macro"
    assert "TransformerClassifier" in built.config_yaml


def test_build_reads_extra_sections_into_their_classes():
    from lbp_motion.federated.flower.experiment import FlowerOptions

    built = runs.build(
        ATTENTION_SMALL, overrides={"flower.round_timeout": 7.5}, sections={"flower": FlowerOptions}
    )
    assert isinstance(built.sections["flower"], FlowerOptions)
    assert built.sections["flower"].round_timeout == 7.5


@pytest.mark.e2e
def test_a_bad_override_is_one_config_error(tiny_tug, tmp_path):
    with pytest.raises(ConfigError, match=r"trainer.max_epochs = 0: expected a positive number"):
        runs.fit(
            ATTENTION_SMALL,
            args=TINY_ARGS,
            overrides={"trainer.max_epochs": 0, "data.root": tiny_tug, "run.out_dir": tmp_path},
        )
    assert not any(tmp_path.rglob("metrics.json"))


def test_no_module_but_the_entry_point_imports_the_cli():
    """lbp cv, lbp sweep and the Flower apps call lbp_motion.runs, not the command line:
    only cli/ itself and `python -m lbp_motion` (__main__.py) import lbp_motion.cli."""
    package = ROOT / "lbp_motion"
    offenders = []
    for path in package.rglob("*.py"):
        if (package / "cli") in path.parents or path == package / "__main__.py":
            continue
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    parts = module.split(".")[: -node.level]
                    base = ".".join([*parts, base] if base else parts)
                names = [base, *(f"{base}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n == "lbp_motion.cli" or n.startswith("lbp_motion.cli.") for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_old_import_path_of_moved_names_still_works_with_a_warning():
    import lbp_motion.cli as cli

    with pytest.warns(DeprecationWarning, match="lbp_motion.runs.LbpCLI"):
        assert cli.LbpCLI is runs.LbpCLI
    with pytest.raises(AttributeError):
        cli.no_such_name  # noqa: B018


def test_arguments_put_later_settings_last():
    argv = runs.arguments(
        "fit",
        ["a.yaml", Path("b.yaml")],
        {"x.y": [1, 2], "z": "text", "n": None},
        ["--k", "v"],
        ckpt_path="c.ckpt",
    )
    assert argv == [
        "fit",
        "--config",
        "a.yaml",
        "--config",
        "b.yaml",
        "--k",
        "v",
        "--x.y=[1, 2]",
        "--z=text",
        "--n=null",
        "--ckpt_path",
        "c.ckpt",
    ]


@pytest.mark.e2e
def test_runs_go_to_trainer_default_root_dir_when_it_is_given(tiny_tug, tmp_path):
    where = {
        "data.root": tiny_tug,
        "data.augment": None,
        "trainer.max_epochs": 1,
        "run.name": "rooted",
    }
    fitted = runs.fit(
        ATTENTION_SMALL,
        args=TINY_ARGS,
        test_after_fit=False,
        overrides={**where, "trainer.default_root_dir": tmp_path / "lightning"},
    )
    assert fitted.run_dir == tmp_path / "lightning" / "rooted" / "version_0"
    assert fitted.best_checkpoint.parent == fitted.run_dir / "checkpoints"
    with pytest.raises(
        ConfigError, match="run.out_dir = .* and trainer.default_root_dir = .*one folder"
    ):
        runs.fit(
            ATTENTION_SMALL,
            args=TINY_ARGS,
            overrides={
                **where,
                "trainer.default_root_dir": tmp_path / "a",
                "run.out_dir": tmp_path / "b",
            },
        )
    assert not (tmp_path / "b").exists() and not (tmp_path / "a").exists()


@pytest.mark.parametrize("resumable", [True, False], ids=["RunCheckpoint", "ModelCheckpoint"])
def test_a_resumed_fit_keeps_the_best_checkpoint_of_the_epochs_before(tmp_path, resumable):
    """`lbp fit --ckpt_path <old run>/last.ckpt` writes into a new run directory. Its
    checkpoint callback is handed the old callback's state: the best score so far must
    survive (a worse epoch after the resume is not the new best), the best file must be
    in the new folder, and the old folder must be left as it was. Lightning's own
    ModelCheckpoint forgets the score across folders, which is what RunCheckpoint mends."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from lbp_motion.checkpoints import RunCheckpoint

    old, new = tmp_path / "version_0" / "checkpoints", tmp_path / "version_1" / "checkpoints"
    old.mkdir(parents=True)
    best_old = old / "best-epoch001.ckpt"
    best_old.write_bytes(b"epoch 1 weights")
    (old / "last.ckpt").write_bytes(b"epoch 2 weights")
    score = torch.tensor(0.8)
    state = {
        "monitor": "val/f1_macro",
        "best_model_score": score,
        "best_model_path": str(best_old),
        "current_score": torch.tensor(0.6),
        "dirpath": str(old),
        "best_k_models": {str(best_old): score},
        "kth_best_model_path": str(best_old),
        "kth_value": score,
        "last_model_path": "",
    }
    cls = RunCheckpoint if resumable else ModelCheckpoint
    callback = cls(dirpath=new, monitor="val/f1_macro", mode="max", save_top_k=1)
    # saved under Lightning's key: a checkpoint of either class resumes with either
    assert callback.state_key == ModelCheckpoint(monitor="val/f1_macro", mode="max").state_key
    callback.load_state_dict(state)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )

    worse_counts = callback.check_monitor_top_k(trainer, torch.tensor(0.5))
    if not resumable:  # Lightning alone: the 0.8 is forgotten, a 0.5 would replace it
        assert callback.best_model_score is None and worse_counts
        return
    assert not worse_counts
    assert callback.check_monitor_top_k(trainer, torch.tensor(0.9))
    assert float(callback.best_model_score) == pytest.approx(0.8)
    assert callback.best_model_path == str(new / best_old.name)
    assert (new / best_old.name).read_bytes() == b"epoch 1 weights"
    assert set(callback.best_k_models) == {str(new / best_old.name)}
    assert best_old.read_bytes() == b"epoch 1 weights" and (old / "last.ckpt").is_file()

    # the last.ckpt callback has no score to keep: it copies nothing (its file is
    # rewritten after the next epoch) and never deletes the old folder's file
    last = RunCheckpoint(dirpath=new, filename="last", monitor=None, save_top_k=1)
    last.load_state_dict(
        {**state, "monitor": None, "best_model_path": str(old / "last.ckpt"), "best_k_models": {}}
    )
    assert last.best_model_path == "" and not (new / "last.ckpt").exists()
