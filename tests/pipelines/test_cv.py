import csv
import json

import pytest

from lbp_motion.cli import main
from lbp_motion.errors import ConfigError
from lbp_motion.pipelines.cv import (
    cv_val_fraction,
    fold_assignment,
    pooled_metrics,
    subject_folds,
    summarize,
)
from tests.conftest import TINY_ARGS, TINY_RUN_ARGS


def test_loso_folds_are_disjoint_and_cover_every_subject():
    subjects = [f"s{i}" for i in range(7)]
    folds = subject_folds(subjects, "loso")
    assert folds == [[s] for s in sorted(subjects)]
    k3 = subject_folds(subjects, 3, seed=1)
    flat = [s for f in k3 for s in f]
    assert sorted(flat) == sorted(subjects) and len(set(flat)) == len(flat)
    assert sorted(len(f) for f in k3) == [2, 2, 3]
    with pytest.raises(ConfigError, match="--folds 9"):
        subject_folds(subjects, 9)


def test_fold_assignment_draws_validation_from_training_subjects():
    subjects = [f"s{i}" for i in range(10)]
    labels = {s: "ab"[i % 2] for i, s in enumerate(subjects)}
    split = fold_assignment(subjects, ["s3"], val_fraction=0.25, seed=0, labels=labels)
    assert split["s3"] == "test" and list(split.values()).count("test") == 1
    val = [s for s, v in split.items() if v == "val"]
    assert val and {labels[s] for s in val} == {"a", "b"}  # stratified
    assert set(split) == set(subjects)


def test_cv_takes_the_configs_validation_share_else_a_fifth():
    from types import SimpleNamespace

    assert cv_val_fraction(SimpleNamespace(val_fraction=0.05)) == 0.05
    assert cv_val_fraction(SimpleNamespace(val_fraction=None)) == 0.2
    assert cv_val_fraction(SimpleNamespace()) == 0.2  # a DataModule without the option


def test_summary_mean_std_and_pooled_metrics():
    s = summarize(
        [{"test/accuracy": 0.5}, {"test/accuracy": 0.7}, {"test/accuracy": 0.9, "val/x": 1}]
    )
    assert s["test/accuracy_mean"] == pytest.approx(0.7) and s[
        "test/accuracy_std"
    ] == pytest.approx(0.2)
    assert s["folds"] == 3 and not any(k.startswith("val/") for k in s)
    rows = [
        {"fold": "0", "recording": "r1", "label": "a", "p_a": "0.9", "p_b": "0.1"},
        {"fold": "0", "recording": "r1", "label": "a", "p_a": "0.4", "p_b": "0.6"},
        {"fold": "1", "recording": "r2", "label": "b", "p_a": "0.2", "p_b": "0.8"},
    ]
    pooled = pooled_metrics(rows, ["a", "b"])
    assert pooled["pooled/accuracy"] == pytest.approx(2 / 3)
    assert pooled["pooled/recording_accuracy"] == pytest.approx(1.0)  # r1 mean 0.65 -> a


def _cv_args(tiny_tug, tmp_path, epochs: int) -> list[str]:
    """`lbp cv` of the small attention model on the tiny TUG data, 3 folds."""
    return [
        "cv",
        "--config",
        "experiments/tug/attention_small.yaml",
        "--folds",
        "3",
        "--out_dir",
        str(tmp_path),
        "--data.root",
        str(tiny_tug),
        *TINY_ARGS,
        "--trainer.max_epochs",
        str(epochs),
    ]


@pytest.mark.e2e
@pytest.mark.slow
def test_lbp_cv_runs_every_fold_and_resumes(tiny_tug, tmp_path, capsys):
    args = [
        *_cv_args(tiny_tug, tmp_path, epochs=1),
        "--model.init_args.recording_rule",
        "majority",
        "--data.val_fraction",  # no --val_fraction: lbp cv takes the config's
        "0.4",
    ]
    assert main(args) == 0
    run = tmp_path / "attention_small-cv" / "version_0"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["folds"] == 3
    assert json.loads((run / "cv.json").read_text())["val_fraction"] == 0.4
    # the pooled recording answers use the task's rule, read from every fold's metrics.json
    assert summary["recording_rule"] == "majority"
    assert json.loads((run / "fold_0" / "metrics.json").read_text())["recording_rule"] == "majority"
    rows = [
        {**r, "fold": str(i)}
        for i in range(3)
        for r in csv.DictReader(open(run / f"fold_{i}" / "predictions.csv"))
    ]
    classes = [k[2:] for k in rows[0] if k.startswith("p_")]
    assert summary["pooled/recording_accuracy"] == pytest.approx(
        pooled_metrics(rows, classes, "majority")["pooled/recording_accuracy"]
    )
    assert 0 <= summary["test/accuracy_mean"] <= 1 and "test/f1_macro_std" in summary
    assert "pooled/mcc" in summary and "pooled/recording_accuracy" in summary
    # the pooled test set is every subject exactly once
    folds = list(csv.DictReader(open(run / "folds.csv")))
    assert len(folds) == 9 and len({r["subject"] for r in folds}) == 9
    tested = set()
    for i in range(3):
        split = dict(csv.reader(open(run / f"fold_{i}" / "split.csv")))
        test_subjects = {s for s, v in split.items() if v == "test"}
        assert test_subjects == {r["subject"] for r in folds if r["fold"] == str(i)}
        # 6 training subjects, 2 of each class: 0.4 x 2 rounds to one of each class
        # validating (at the default 0.2 none would, and the fallback draws one alone)
        assert list(split.values()).count("val") == 3
        assert (run / f"fold_{i}" / "metrics.json").is_file()
        tested |= test_subjects
    assert len(tested) == 9
    assert "| accuracy |" in capsys.readouterr().out
    # resuming a finished run redoes nothing
    before = (run / "fold_0" / "metrics.json").stat().st_mtime
    assert main([*args, "--resume", str(run)]) == 0
    assert (run / "fold_0" / "metrics.json").stat().st_mtime == before
    assert json.loads((run / "summary.json").read_text()) == summary
    # resuming with other folds would mix two cross-validations: one clear error
    capsys.readouterr()
    assert main([*args[:4], "4", *args[5:], "--resume", str(run)]) == 2
    assert "cv.json: field 'folds' is '3' but this run asks for '4'" in capsys.readouterr().err
    assert (run / "fold_0" / "metrics.json").stat().st_mtime == before


@pytest.mark.e2e
@pytest.mark.slow
def test_an_interrupted_fold_goes_on_from_its_last_checkpoint(tiny_tug, tmp_path, monkeypatch):
    """`lbp cv --resume`: a fold interrupted after its first epoch is fitted on from its
    last.ckpt, not from epoch 0; a fold fitted and tested but interrupted while
    predicting is not fitted again."""
    import signal

    from lbp_motion import runs
    from lbp_motion.interrupts import Interrupted
    from lbp_motion.trust import load_checkpoint

    args = [*_cv_args(tiny_tug, tmp_path, epochs=2), "--baselines", "none"]
    real_fit, real_predict, fits, predicts = runs.fit, runs.predict, [], []

    def fit(**kwargs):
        fits.append((kwargs["overrides"]["run.name"], kwargs.get("ckpt_path")))
        if kwargs["overrides"]["run.name"] == "fold_1" and len(fits) == 2:  # first try
            first_epoch = {**kwargs["overrides"], "trainer.max_epochs": 1}
            real_fit(**{**kwargs, "overrides": first_epoch, "test_after_fit": False})
            raise Interrupted(signal.SIGTERM)  # after its first epoch, before its test
        return real_fit(**kwargs)

    def predict(**kwargs):
        predicts.append(kwargs["overrides"]["run.name"])
        if predicts.count("fold_2") == 1 and predicts[-1] == "fold_2":
            raise Interrupted(signal.SIGTERM)
        return real_predict(**kwargs)

    monkeypatch.setattr(runs, "fit", fit)
    monkeypatch.setattr(runs, "predict", predict)
    run = tmp_path / "attention_small-cv" / "version_0"
    assert main(args) == 128 + signal.SIGTERM
    last = run / "fold_1" / "version_0" / "checkpoints" / "last.ckpt"
    assert load_checkpoint(last)["epoch"] == 0 and not (run / "fold_1" / "metrics.json").exists()

    fits.clear()
    assert main([*args, "--resume", str(run)]) == 128 + signal.SIGTERM  # fold 2 predicting
    assert fits == [("fold_1", last), ("fold_2", None)]
    resumed = sorted((run / "fold_1").glob("version_*/checkpoints/last.ckpt"))[-1]
    assert resumed != last and load_checkpoint(resumed)["epoch"] == 1  # one more epoch
    assert json.loads((run / "fold_1" / "metrics.json").read_text())["epochs_trained"] == 2

    fits.clear()
    assert main([*args, "--resume", str(run)]) == 0
    assert fits == []  # fold 2 was fitted and tested: it only predicts
    assert json.loads((run / "summary.json").read_text())["folds"] == 3


@pytest.mark.e2e
def test_quickstart_cross_validates_with_one_validation_subject_per_fold(tiny_tug, tmp_path):
    """The quickstart's data.val_fraction (0.05) is lbp cv's default (cv.json; of each
    fold's 6 training subjects one validates), and the model is compared with the
    baselines at window and recording level."""
    args = ["cv", "--config", "experiments/quickstart.yaml", "--folds", "3"]
    args += ["--out_dir", str(tmp_path), "--data.root", str(tiny_tug), *TINY_RUN_ARGS]
    assert main(args) == 0
    run = tmp_path / "quickstart-cv" / "version_0"
    assert json.loads((run / "cv.json").read_text())["val_fraction"] == 0.05
    for i in range(3):
        split = dict(csv.reader(open(run / f"fold_{i}" / "split.csv")))
        assert list(split.values()).count("val") == 1
        assert list(split.values()).count("train") == 5
    summary = json.loads((run / "summary.json").read_text())
    for name in ("window_stats", "recording_stats"):
        low, high = summary[f"diff/{name}/recording_accuracy_ci"]
        assert low <= summary[f"diff/{name}/recording_accuracy"] <= high
    assert "diff/window_stats/accuracy" in summary


def test_fold_assignment_keeps_every_class_of_the_rest_in_training():
    """A class with one subject outside the test fold trains; it is not spent on validation."""
    from lbp_motion.pipelines.cv import fold_assignment

    labels = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "t1": "A"}
    for seed in range(5):
        split = fold_assignment(list(labels), ["t1"], val_fraction=0.5, seed=seed, labels=labels)
        assert split["b1"] == "train" and split["t1"] == "test"
        assert "val" in split.values() and {
            labels[s] for s, v in split.items() if v == "train"
        } == {"A", "B"}
