import pytest
import torch

from lbp_motion.tasks.metrics import (
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
    assert out["test/f1_weighted"].item() == pytest.approx(sum(f * s for f, s in zip(f1, support)) / 7)
    assert out["test/precision_weighted"].item() == pytest.approx((3 * 2 / 3 + 2 * 2 / 3 + 2 * 1) / 7)
    # weighted recall equals accuracy (as in SPEC's table)
    assert out["test/recall_weighted"].item() == pytest.approx(5 / 7)
    # MCC from the confusion matrix: (c*s - sum p_k t_k) / sqrt((s^2 - sum p^2)(s^2 - sum t^2))
    c, s = 5, 7
    p, t = [3, 3, 1], [3, 2, 2]
    mcc = (c * s - sum(a * b for a, b in zip(p, t))) / ((s**2 - sum(a * a for a in p)) * (s**2 - sum(b * b for b in t))) ** 0.5
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
    assert recording_metrics(recording, probs, target, "val")["val/recording_accuracy"].item() == 0.5
