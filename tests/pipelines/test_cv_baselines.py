"""lbp cv beside simple baselines and chance, with subject-bootstrap intervals (issue 13)."""

import csv
import json

import numpy as np
import pytest
import torch

from lbp_motion.cli import main
from lbp_motion.datasets.splits import write_split_file
from lbp_motion.evaluation.baselines import (
    fold_baselines,
    labels_per_recording,
    majority_class,
    recording_stats_probs,
    window_features,
    window_stats_probs,
)
from lbp_motion.evaluation.bootstrap import METRICS, SubjectBootstrap, chance_metrics
from lbp_motion.pipelines.cv import fold_assignment, pooled_metrics, subject_folds
from tests.conftest import SHARED_DATA, TINY_ARGS


def make_rows(outcomes, classes=("a", "b", "c"), windows=20, recordings=2, seed=0):
    """Rows of subjects s0, s1, ...: ``outcomes[i]`` is the share of subject i's windows
    predicted right (wrong ones predict the next class); labels cycle by subject."""
    rng = np.random.default_rng(seed)
    rows, subject_of = [], {}
    for i, share in enumerate(outcomes):
        label = classes[i % len(classes)]
        for r in range(recordings):
            name = f"s{i}_r{r}"
            subject_of[name] = f"s{i}"
            for w in range(windows):
                right = rng.random() < share
                guess = label if right else classes[(classes.index(label) + 1) % len(classes)]
                p = {c: 0.8 if c == guess else 0.2 / (len(classes) - 1) for c in classes}
                rows.append(
                    {
                        "fold": str(i % 3),
                        "recording": name,
                        "start": str(5 * w),
                        "label": label,
                        **{f"p_{c}": f"{v:.6f}" for c, v in p.items()},
                    }
                )
    return rows, subject_of


def subjects_of(subject_of):
    return sorted(set(subject_of.values()))


def test_point_metrics_match_the_pooled_torchmetrics():
    rng = np.random.default_rng(3)
    for classes in (("a", "b"), ("a", "b", "c", "d")):
        rows, subject_of = make_rows(
            rng.uniform(0.2, 1.0, 12), classes=classes, windows=7, recordings=3
        )
        boot = SubjectBootstrap(subjects_of(subject_of), subject_of, classes, n_boot=10)
        point, pooled = boot.point(rows), pooled_metrics(rows, classes)
        for m in METRICS:
            assert point[m] == pytest.approx(pooled[f"pooled/{m}"], abs=1e-6), (classes, m)


def test_recording_rule_reaches_the_pooled_and_bootstrap_recording_metrics():
    """One recording of class a: 3 windows say b at 0.6, 2 say a at 0.99. Mean
    probability picks a, a majority vote picks b: both the pooled metrics and the
    bootstrap follow the rule they are given, and agree with each other."""
    rows, subject_of = [], {"s0_r0": "s0", "s1_r0": "s1"}
    for p_a in (0.4, 0.4, 0.4, 0.99, 0.99):
        rows.append(
            {
                "fold": "0",
                "recording": "s0_r0",
                "start": "0",
                "label": "a",
                "p_a": f"{p_a:.6f}",
                "p_b": f"{1 - p_a:.6f}",
            }
        )
    rows += [
        {"fold": "0", "recording": "s1_r0", "start": "0", "label": "b", "p_a": "0.1", "p_b": "0.9"}
    ]
    for rule, expected in (("mean_prob", 1.0), ("majority", 0.5)):
        boot = SubjectBootstrap(["s0", "s1"], subject_of, ("a", "b"), n_boot=5, rule=rule)
        assert pooled_metrics(rows, ("a", "b"), rule)["pooled/recording_accuracy"] == pytest.approx(
            expected
        )
        assert boot.point(rows)["recording_accuracy"] == pytest.approx(expected)


def test_interval_contains_the_point_and_narrows_with_more_subjects():
    widths = []
    for n in (12, 96):
        rows, subject_of = make_rows(np.random.default_rng(n).uniform(0.3, 1.0, n))
        boot = SubjectBootstrap(
            subjects_of(subject_of), subject_of, ("a", "b", "c"), n_boot=500, seed=1
        )
        point, ci = boot.point(rows), boot.interval(rows)
        for m in METRICS:
            assert ci[m][0] <= point[m] <= ci[m][1], m
        widths.append(ci["accuracy"][1] - ci["accuracy"][0])
    assert widths[1] < 0.6 * widths[0]  # ~ 1 / sqrt(subjects): 8x the subjects, ~1/2.8 the width


def test_resampling_is_by_subject_not_by_window():
    """10 subjects of 100 identical windows each: 5 always right, 5 always wrong. A
    window bootstrap (1000 windows) would give accuracy 0.5 +- 0.03; by subject it is
    0.5 +- 1.96 * sqrt(0.25 / 10) = +- 0.31."""
    rows, subject_of = make_rows([1.0, 0.0] * 5, windows=50)
    boot = SubjectBootstrap(
        subjects_of(subject_of), subject_of, ("a", "b", "c"), n_boot=2000, seed=0
    )
    lo, hi = boot.interval(rows)["accuracy"]
    assert boot.point(rows)["accuracy"] == 0.5
    assert 0.45 < hi - lo < 0.75  # a subject-level width; window level would be ~0.06
    # a subject drawn twice counts twice: every resample's accuracy is (right subjects drawn) / 10
    values = boot.draws(rows)["accuracy"]
    assert np.allclose(values * 10, np.round(values * 10))
    right = np.array([int(s[1:]) % 2 == 0 for s in boot.subjects])
    assert np.allclose(values, boot.counts[:, right].sum(1) / 10)


def test_paired_difference_of_a_model_with_itself_is_exactly_zero():
    rows, subject_of = make_rows(np.random.default_rng(0).uniform(0.2, 1, 9))
    boot = SubjectBootstrap(subjects_of(subject_of), subject_of, ("a", "b", "c"), n_boot=300)
    for d in boot.difference(rows, rows).values():
        assert d["diff"] == 0 and d["ci"] == [0.0, 0.0]
    # better on every subject: the paired interval lies above 0 although the two
    # unpaired intervals overlap (the subjects' difficulty is shared)
    outcomes = np.random.default_rng(1).uniform(0.1, 0.8, 15)
    better, _ = make_rows(np.minimum(outcomes + 0.15, 1.0), seed=0)
    worse, _ = make_rows(outcomes, seed=0)
    boot = SubjectBootstrap(
        sorted({f"s{i}" for i in range(15)}),
        {r["recording"]: r["recording"].split("_")[0] for r in better},
        ("a", "b", "c"),
        n_boot=500,
    )
    diff = boot.difference(better, worse)["accuracy"]
    assert diff["ci"][0] > 0 and diff["diff"] == pytest.approx(
        boot.point(better)["accuracy"] - boot.point(worse)["accuracy"]
    )
    assert boot.interval(better)["accuracy"][0] < boot.interval(worse)["accuracy"][1]


def test_chance_is_a_uniform_guess():
    rows, _ = make_rows([1.0] * 6, classes=("a", "b", "c"))  # 2 subjects per class
    chance = chance_metrics(rows, ("a", "b", "c"))
    assert (
        chance["accuracy"] == pytest.approx(1 / 3)
        and chance["mcc"] == 0
        and f"{chance['mcc']:.4f}" == "0.0000"
    )
    assert chance["f1_macro"] == pytest.approx(1 / 3) and chance[
        "recording_accuracy"
    ] == pytest.approx(1 / 3)
    # the real phase windows' class counts: the MCC is 0, not -3e-17 (shown as -0.0000)
    classes = [f"k{i}" for i in range(6)]
    rows = [
        {"recording": f"r{i}", "label": c, **{f"p_{k}": "0.1" for k in classes}}
        for c, n in zip(classes, (125, 164, 504, 277, 422, 659))
        for i in range(n)
    ]
    assert chance_metrics(rows, classes)["mcc"] == 0 and chance_metrics(rows, classes)[
        "accuracy"
    ] == pytest.approx(1 / 6)


class _Windows(torch.utils.data.Dataset):
    def __init__(self, x, mask, y, recording):
        self.x, self.mask, self.y, self.recording = x, mask, y, recording

    def __len__(self):
        return len(self.y)

    def window_labels(self):
        return self.y.numpy()

    def __getitem__(self, i):
        return {
            "x": self.x[i],
            "mask": self.mask[i],
            "y": self.y[i],
            "recording": self.recording[i],
            "start": torch.tensor(0),
        }


class _DataModule:
    """The part of a DataModule the baselines use: public methods only."""

    def __init__(self, train, test, classes):
        self.train, self.test = train, test
        self.classes = classes
        self.recording_names = [f"r{i}" for i in range(100)]

    def real_train_dataset(self):
        return self.train

    def test_dataloader(self):
        return torch.utils.data.DataLoader(self.test, batch_size=8)


def _windows(labels, seed=0, t=10, f=4):
    g = torch.Generator().manual_seed(seed)
    y = torch.tensor(labels)
    x = (
        torch.randn(len(y), t, f, generator=g) * 0.1 + y.view(-1, 1, 1).float()
    )  # separable by the mean
    return _Windows(x, torch.ones(len(y), t, dtype=torch.bool), y, torch.arange(len(y)) % 100)


def test_majority_baseline_predicts_the_training_majority():
    assert (
        majority_class([2, 0, 2, 1, 2], 3) == 2 and majority_class([1, 0], 3) == 0
    )  # ties: first class
    train = _windows([0] * 20 + [1] * 25 + [2] * 40)
    test = _windows([0] * 10 + [1] * 2, seed=1)  # the test majority is another class: not used
    rows = fold_baselines(_DataModule(train, test, ["a", "b", "c"]), ["majority", "window_stats"])
    assert len(rows["majority"]) == 12
    assert {r["predicted"] for r in rows["majority"]} == {"c"} and rows["majority"][0][
        "p_c"
    ] == "1.000000"
    assert [r["label"] for r in rows["majority"]] == ["a"] * 10 + ["b"] * 2
    # the window statistics separate the classes here
    assert [r["predicted"] for r in rows["window_stats"]] == ["a"] * 10 + ["b"] * 2
    assert set(rows["window_stats"][0]) == {
        "recording",
        "start",
        "predicted",
        "label",
        "p_a",
        "p_b",
        "p_c",
    }


def test_window_features_use_the_real_frames_only():
    x = torch.full((1, 6, 2), 1000.0)  # padding: huge values that must not count
    x[0, :4, 0] = torch.tensor([1.0, 3.0, 2.0, 6.0])
    x[0, :4, 1] = 5.0
    mask = torch.tensor([[True, True, True, True, False, False]])
    f = window_features(x, mask)
    assert f.shape == (1, 6)  # mean, std, motion per channel
    v = np.array([1.0, 3.0, 2.0, 6.0])
    assert np.allclose(f[0], [v.mean(), 5.0, v.std(), 0.0, np.abs(np.diff(v)).mean(), 0.0])
    # a masked frame inside the window breaks the pairs around it
    mask = torch.tensor([[True, True, False, True, False, False]])
    f = window_features(x, mask)
    v = np.array([1.0, 3.0, 6.0])
    assert np.allclose(f[0, [0, 2, 4]], [v.mean(), v.std(), 2.0])  # only the pair (1, 3)
    assert np.allclose(window_features(x, torch.zeros(1, 6, dtype=torch.bool)), 0)  # no real frame


def test_window_stats_class_absent_from_training_gets_probability_zero():
    rng = np.random.default_rng(0)
    y = np.array([0] * 20 + [2] * 20)
    feats = rng.normal(size=(40, 3)) + y[:, None]
    probs = window_stats_probs(feats, y, feats[:5], 3)
    assert probs.shape == (5, 3) and np.all(probs[:, 1] == 0) and np.allclose(probs.sum(1), 1)


@pytest.mark.e2e
@pytest.mark.slow
def test_lbp_cv_reports_baselines_and_intervals(tiny_tug, tmp_path, capsys):
    from lbp_motion.pipelines.report import write_report

    args = [
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
        "1",
        "--bootstrap",
        "200",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    run = tmp_path / "attention_small-cv" / "version_0"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["baselines"] == ["window_stats", "recording_stats", "majority"]
    assert summary["bootstrap/subjects"] == 9
    assert summary["bootstrap/resamples"] == 200
    for m in METRICS:
        lo, hi = summary[f"pooled/{m}_ci"]
        assert lo <= summary[f"pooled/{m}"] <= hi
        for b in ("window_stats", "recording_stats", "majority"):
            lo, hi = summary[f"baseline/{b}/pooled/{m}_ci"]
            assert lo <= summary[f"baseline/{b}/pooled/{m}"] <= hi
            if b == "recording_stats" and not m.startswith("recording_"):
                # one answer per recording: compared with the model at recording level only
                assert f"diff/{b}/{m}" not in summary
                continue
            assert summary[f"diff/{b}/{m}"] == pytest.approx(
                summary[f"pooled/{m}"] - summary[f"baseline/{b}/pooled/{m}"]
            )
            assert len(summary[f"diff/{b}/{m}_ci"]) == 2
        assert f"chance/{m}" in summary
    assert summary["chance/accuracy"] == pytest.approx(1 / 3)
    # the baselines saw the model's test windows, fold by fold
    for i in range(3):
        model = list(csv.DictReader(open(run / f"fold_{i}" / "predictions.csv")))
        for b in ("window_stats", "recording_stats", "majority"):
            rows = list(csv.DictReader(open(run / f"fold_{i}" / f"baseline_{b}.csv")))
            assert [(r["recording"], r["start"], r["label"]) for r in rows] == [
                (r["recording"], r["start"], r["label"]) for r in model
            ]
    # the majority baseline: the majority of each fold's training windows
    from lbp_motion.datamodules.tug import TUGDataModule

    for i in range(3):
        dm = TUGDataModule(
            root=str(tiny_tug), stride=15, split_file=str(run / f"fold_{i}" / "split.csv")
        )
        dm.setup("fit")
        top = dm.classes[np.bincount(dm.real_train_dataset().window_labels()).argmax()]
        assert {
            r["predicted"]
            for r in csv.DictReader(open(run / f"fold_{i}" / "baseline_majority.csv"))
        } == {top}
    md = (run / "summary.md").read_text()
    for line in (
        "| model | ",
        "| window statistics (logistic regression) | ",
        "| majority class | ",
        "| chance (uniform guess) | ",
        "model - majority class (f1_macro): ",
    ):
        assert line in md and line in printed
    assert "9 subjects" in md
    # lbp report shows the same table
    report = (write_report([run], tmp_path / "report").with_suffix(".md")).read_text()
    assert (
        "Model, baselines and chance" in report
        and "| window statistics (logistic regression) |" in report
    )

    # a resume recomputes no baseline; --baselines none leaves them out of the summary
    stamp = (run / "fold_0" / "baseline_window_stats.csv").stat().st_mtime_ns
    assert main([*args, "--resume", str(run)]) == 0
    assert (run / "fold_0" / "baseline_window_stats.csv").stat().st_mtime_ns == stamp
    assert json.loads((run / "summary.json").read_text()) == summary
    assert main([*args, "--resume", str(run), "--baselines", "none"]) == 0
    bare = json.loads((run / "summary.json").read_text())
    assert not any(k.startswith(("baseline/", "diff/")) for k in bare) and bare["baselines"] == []
    assert bare["pooled/accuracy_ci"] == summary["pooled/accuracy_ci"]
    assert "| window statistics" not in (run / "summary.md").read_text()
    capsys.readouterr()
    assert main([*args, "--baselines", "some"]) == 2
    err = capsys.readouterr().err
    assert (
        "--baselines 'some': expected 'all' or 'none'" in err and len(err.strip().splitlines()) == 1
    )


PHASES = SHARED_DATA / "tst-tug-phases"
PHASE_CLASSES = ["sit", "sit_to_stand", "walk_out", "turn", "walk_back", "turn_to_sit"]


@pytest.mark.slow
@pytest.mark.skipif(
    not PHASES.is_dir(),
    reason=f"real TUG phase data not found at {PHASES} (see shared/data/README.md)",
)
def test_window_stats_baseline_recognises_real_tug_phases(tmp_path):
    """The window-statistics baseline alone (no model) on real Kinect TUG phases, 5 folds
    by subject as `lbp cv --folds 5` makes them (recordings under 30 frames skipped);
    the reference reaches window accuracy 0.90."""
    from lbp_motion.datamodules.tug import TUGDataModule

    whole = TUGDataModule(root=str(PHASES), classes=PHASE_CLASSES)
    subjects, majority = whole.subjects(), whole.subject_labels()
    rows = []
    for i, test in enumerate(subject_folds(subjects, 5, seed=0)):
        split = write_split_file(
            tmp_path / f"split_{i}.csv", fold_assignment(subjects, test, seed=i, labels=majority)
        )
        dm = TUGDataModule(root=str(PHASES), classes=PHASE_CLASSES, split_file=str(split))
        dm.setup("fit")
        rows += [
            {**r, "fold": str(i)} for r in fold_baselines(dm, ["window_stats"])["window_stats"]
        ]
    metrics = pooled_metrics(rows, PHASE_CLASSES)
    assert metrics["pooled/accuracy"] > 0.8, metrics


def test_mcc_follows_torchmetrics_where_it_divides_by_zero():
    """Two classes, one never predicted (a majority baseline): torchmetrics' smoothed value,
    so that pooled/mcc and its interval agree."""
    from torchmetrics.functional.classification import multiclass_matthews_corrcoef

    from lbp_motion.evaluation.bootstrap import confusion_metrics

    for c, matrices in (
        (
            2,
            [
                [[67, 0], [6, 0]],
                [[0, 5], [0, 9]],
                [[4, 0], [0, 0]],
                [[0, 3], [0, 0]],
                [[3, 2], [0, 0]],
                [[0, 0], [2, 7]],
                [[5, 1], [2, 8]],
            ],
        ),
        (3, [[[4, 0, 0], [3, 0, 0], [0, 0, 0]], [[2, 1, 0], [0, 3, 1], [1, 0, 2]]]),
    ):
        for cm in matrices:
            cm = torch.tensor(cm)
            target = torch.repeat_interleave(torch.arange(c).repeat_interleave(c), cm.flatten())
            preds = torch.repeat_interleave(torch.arange(c).repeat(c), cm.flatten())
            expected = float(multiclass_matthews_corrcoef(preds, target, c))
            assert float(confusion_metrics(cm.numpy())["mcc"]) == pytest.approx(
                expected, abs=1e-5
            ), cm


def test_verdict_judges_the_monitored_metric_by_its_interval():
    from lbp_motion.evaluation.tables import comparison, comparison_markdown

    summary = {
        "pooled/accuracy": 0.9,
        "pooled/accuracy_ci": [0.8, 0.95],
        "bootstrap/subjects": 20,
        "bootstrap/resamples": 1000,
        "baseline/window_stats/pooled/accuracy": 0.85,
        "diff/window_stats/f1_macro": -0.05,
        "diff/window_stats/f1_macro_ci": [-0.09, -0.01],
        "diff/window_stats/recording_accuracy": 0.1,
        "diff/window_stats/recording_accuracy_ci": [0.02, 0.2],
        "diff/window_stats/accuracy": 0.01,
        "diff/window_stats/accuracy_ci": [-0.02, 0.04],
    }
    # no monitor (or one that is not a pooled metric): macro F1, whose interval is below 0
    for monitor in (None, "val/loss"):
        (verdict,) = comparison({**summary, "monitor": monitor})["verdicts"]
        assert "(f1_macro)" in verdict and "worse" in verdict
    (verdict,) = comparison({**summary, "monitor": "val/recording_accuracy"})["verdicts"]
    assert "(recording_accuracy)" in verdict and "better" in verdict
    assert "not shown to be better" in comparison_markdown({**summary, "monitor": "val/accuracy"})


def _recordings(n, seed):
    """``collect``-like output: n recordings of 5 windows, alternating classes; feature 0's
    recording mean tells the class, single windows are dominated by noise."""
    g = np.random.default_rng(seed)
    rec = np.repeat(np.arange(n), 5)
    y = rec % 2
    features = g.normal(size=(len(rec), 3)) * 2.0
    features[:, 0] += np.where(y == 1, 1.0, -1.0)
    return {"features": features, "y": y, "recording": rec + 100 * seed}


def _by_recording(d):
    ids = np.unique(d["recording"])
    means = np.stack([d["features"][d["recording"] == r].mean(0) for r in ids])
    return means, np.array([d["y"][d["recording"] == r][0] for r in ids])


def test_recording_stats_is_the_regression_on_recording_means_given_to_every_window():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = _recordings(12, 1), _recordings(6, 2)
    probs = recording_stats_probs(train, test, 2)
    # every window of a test recording gets the same answer
    for r in np.unique(test["recording"]):
        rows = probs[test["recording"] == r]
        assert np.allclose(rows, rows[0])
    # ... that of the same regression fitted on the recording means
    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    reference.fit(*_by_recording(train))
    expected = reference.predict_proba(_by_recording(test)[0])
    got = np.stack([probs[test["recording"] == r][0] for r in np.unique(test["recording"])])
    np.testing.assert_allclose(got, expected, rtol=1e-6)


class _Indexed:
    def __init__(self, recordings, labels):
        self.index = np.stack([recordings, np.zeros_like(recordings)], axis=1)
        self.labels = np.asarray(labels)

    def window_labels(self):
        return self.labels


def test_the_recording_baseline_needs_one_label_per_recording():
    assert labels_per_recording(_Indexed(np.array([0, 0, 1, 1]), [2, 2, 0, 0]))
    # segment labels that change within a recording (EmoPain): skipped by lbp cv
    assert not labels_per_recording(_Indexed(np.array([0, 0, 1, 1]), [2, 1, 0, 0]))
    assert not labels_per_recording(object())
