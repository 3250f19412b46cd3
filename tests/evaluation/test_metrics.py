import pytest
import torch

from lbp_motion.evaluation.metrics import (
    aggregate_by_recording,
    classification_metrics,
    flatten_metrics,
    recording_metrics,
)


def test_metrics_match_hand_computed_values():
    # confusion (rows true, cols pred): [[2, 1, 0], [0, 2, 0], [1, 0, 1]]
    target = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    preds = torch.tensor([0, 0, 1, 1, 1, 0, 2])
    m = classification_metrics(3)
    m.update(torch.nn.functional.one_hot(preds, 3).float(), target)
    out = flatten_metrics(m.compute(), ["low", "medium", "high"], "test")
    # precision per class: 2/3, 2/3, 1; recall: 2/3, 1, 1/2
    f1 = [2 / 3, 0.8, 2 / 3]
    assert out["test/accuracy"].item() == pytest.approx(5 / 7)
    assert [out[f"test/f1/{c}"].item() for c in ("low", "medium", "high")] == pytest.approx(f1)
    assert out["test/f1_macro"].item() == pytest.approx(sum(f1) / 3)
    support = [3, 2, 2]
    assert out["test/f1_weighted"].item() == pytest.approx(
        sum(f * s for f, s in zip(f1, support)) / 7
    )
    assert out["test/precision_weighted"].item() == pytest.approx(
        (3 * 2 / 3 + 2 * 2 / 3 + 2 * 1) / 7
    )
    # weighted recall equals accuracy (as in SPEC's table)
    assert out["test/recall_weighted"].item() == pytest.approx(5 / 7)
    # MCC from the confusion matrix: (c*s - sum p_k t_k) / sqrt((s^2 - sum p^2)(s^2 - sum t^2))
    c, s = 5, 7
    p, t = [3, 3, 1], [3, 2, 2]
    mcc = (c * s - sum(a * b for a, b in zip(p, t))) / (
        (s**2 - sum(a * a for a in p)) * (s**2 - sum(b * b for b in t))
    ) ** 0.5
    assert out["test/mcc"].item() == pytest.approx(mcc)


def test_recording_level_averages_window_probabilities():
    recording = torch.tensor([7, 7, 7, 9, 9])
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.6, 0.4]])
    target = torch.tensor([1, 1, 1, 0, 0])
    ids, mean, labels = aggregate_by_recording(recording, probs, target)
    assert ids.tolist() == [7, 9] and labels.tolist() == [1, 0]
    torch.testing.assert_close(mean[0], torch.tensor([1.4 / 3, 1.6 / 3]))
    out = recording_metrics(recording, probs, target, "val")
    # window majority would call recording 7 class 1 too; the mean says 1 (0.53): correct
    assert out["val/recording_accuracy"].item() == 1.0
    probs[1] = torch.tensor([0.95, 0.05])  # now the mean of recording 7 favours class 0
    assert (
        recording_metrics(recording, probs, target, "val")["val/recording_accuracy"].item() == 0.5
    )


# one recording whose three rules give three answers: three windows narrowly for class 0
# (class 2 nearly ruled out), two windows confidently for class 2 (class 0 ruled out)
DISAGREE = torch.tensor([[0.5, 0.45, 0.05]] * 3 + [[0.001, 0.099, 0.9]] * 2)


@pytest.mark.parametrize(
    "rule, expected",
    [
        ("mean_prob", 2),  # the mean: 0.30, 0.31, 0.39
        ("mean_log_prob", 1),  # class 1 is never ruled out: geometric mean highest
        ("majority", 0),  # three of five windows vote 0
    ],
)
def test_recording_rules_on_windows_where_they_disagree(rule, expected):
    recording = torch.tensor([4, 4, 4, 4, 4, 8])
    probs = torch.cat([DISAGREE, torch.tensor([[0.2, 0.3, 0.5]])])
    target = torch.tensor([expected] * 5 + [2])
    ids, scores, labels = aggregate_by_recording(recording, probs, target, rule)
    assert ids.tolist() == [4, 8] and labels.tolist() == [expected, 2]
    assert scores.argmax(dim=1).tolist() == [expected, 2]
    assert (scores >= 0).all()
    torch.testing.assert_close(scores.sum(dim=1), torch.ones(2))  # probability-like for every rule
    out = recording_metrics(recording, probs, target, "val", rule)
    assert out["val/recording_accuracy"].item() == 1.0
    # the same windows under the other rules get recording 4 wrong
    others = [r for r in ("mean_prob", "mean_log_prob", "majority") if r != rule]
    assert all(
        recording_metrics(recording, probs, target, "val", r)["val/recording_accuracy"] == 0.5
        for r in others
    )


def test_recording_rule_values():
    probs = DISAGREE
    rec = torch.zeros(5, dtype=torch.long)
    _, mean, _ = aggregate_by_recording(rec, probs, rec)  # default: the mean, as before
    torch.testing.assert_close(mean[0], probs.mean(dim=0))
    _, geo, _ = aggregate_by_recording(rec, probs, rec, "mean_log_prob")
    g = probs.log().mean(dim=0).exp()
    torch.testing.assert_close(geo[0], g / g.sum())
    _, votes, _ = aggregate_by_recording(rec, probs, rec, "majority")
    torch.testing.assert_close(
        votes[0], (torch.tensor([3.0, 0.0, 2.0]) + probs.mean(dim=0) / 2) / 5.5
    )


def test_majority_tie_goes_to_the_larger_mean_probability():
    probs = torch.tensor([[0.6, 0.4], [0.55, 0.45], [0.1, 0.9], [0.45, 0.55]])  # 2 votes each
    rec = torch.zeros(4, dtype=torch.long)
    _, scores, _ = aggregate_by_recording(rec, probs, rec, "majority")
    assert scores.argmax().item() == 1  # mean probability 0.575 for class 1
    _, scores, _ = aggregate_by_recording(rec, probs.flip(1), rec, "majority")
    assert scores.argmax().item() == 0


def test_unknown_recording_rule_is_one_config_error():
    from lbp_motion.errors import ConfigError
    from lbp_motion.tasks import ClassificationTask

    with pytest.raises(
        ConfigError,
        match="recording_rule='median'; expected one of mean_prob, mean_log_prob, majority",
    ):
        aggregate_by_recording(
            torch.zeros(1, dtype=torch.long),
            torch.ones(1, 2) / 2,
            torch.zeros(1, dtype=torch.long),
            "median",
        )
    with pytest.raises(ConfigError, match="ClassificationTask: recording_rule='vote'"):
        ClassificationTask(
            data_spec={"num_features": 4, "classes": ["a", "b"]}, recording_rule="vote"
        )


@pytest.mark.parametrize("rule", ["mean_prob", "majority"])
def test_recording_predictions_csv_follows_the_task_rule(rule, tmp_path):
    import csv
    from types import SimpleNamespace

    from lbp_motion.evaluation.results import PredictionFiles

    batch = {
        "recording": torch.zeros(5, dtype=torch.long),
        "start": torch.arange(5),
        "probs": DISAGREE,
    }
    module = SimpleNamespace(classes=["a", "b", "c"], recording_rule=rule)
    trainer = SimpleNamespace(datamodule=SimpleNamespace(recording_names=["rec0"]))
    PredictionFiles(tmp_path).write_on_epoch_end(trainer, module, [batch], None)
    (row,) = csv.DictReader(open(tmp_path / "recording_predictions.csv"))
    assert row["recording"] == "rec0" and row["windows"] == "5"
    assert row["predicted"] == {"mean_prob": "c", "majority": "a"}[rule]
    _, scores, _ = aggregate_by_recording(batch["recording"], DISAGREE, batch["recording"], rule)
    assert [float(row[f"p_{c}"]) for c in "abc"] == pytest.approx(scores[0].tolist(), abs=1e-6)
