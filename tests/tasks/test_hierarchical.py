"""HierarchicalTask: the combination rule, the forward pass, stage 2 trained on pain only,
and the two ways to run it: both stages in one fit, and combined from checkpoints."""

import json

import pytest
import torch

from lbp_motion.models import LSTMDNNClassifier
from lbp_motion.tasks import HierarchicalTask
from lbp_motion.tasks.hierarchical import combine_hierarchical
from tests.conftest import EMOPAIN_ARGS

#: tests/conf/tiny_emopain.yaml: tiny synthetic data, one quiet CPU epoch
FAST = EMOPAIN_ARGS

SPEC = {"num_features": 5, "classes": ["no_pain", "low", "high"], "aux_classes": ["a", "b", "c"]}
SMALL = [
    "--model.init_args.model.init_args.hidden_sizes",
    "[8]",
    "--model.init_args.model.init_args.dense_sizes",
    "[8]",
]


def small(f, c):
    return LSTMDNNClassifier(f, c, hidden_sizes=(8,), dense_sizes=(8,), dropout=0.0)


def batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, 5, generator=g)
    lengths = torch.tensor([8, 6, 3, 8, 5, 1][:n])
    mask = torch.arange(8).expand(n, 8) < lengths.unsqueeze(1)
    x[~mask] = 0
    return {
        "x": x,
        "mask": mask,
        "y": torch.tensor([0, 1, 2, 0, 0, 2][:n]),
        "aux": torch.tensor([0, 1, 2, 0, 1, 2][:n]),
        "recording": torch.arange(n),
        "start": torch.zeros(n, dtype=torch.long),
    }


def make_task():
    torch.manual_seed(0)
    return HierarchicalTask(data_spec=SPEC, detector_model=small, estimator_model=small).eval()


def test_no_pain_from_stage_1_wins_whatever_stage_2_says():
    is_pain = torch.tensor([False, False, True, True, True])
    stage2 = torch.tensor([1, 0, 0, 1, 1])  # 0 low, 1 high
    assert combine_hierarchical(is_pain, stage2).tolist() == [0, 0, 1, 2, 2]


def test_forward_combines_the_thresholded_score_and_stage_2():
    task, b = make_task(), batch()
    scores = task.detector.scores(b["x"], b["mask"])
    stage2 = task.estimator(b["x"], b["mask"]).argmax(dim=1)
    task.detector.threshold.fill_(float(scores.median().detach()))
    expected = torch.where(scores >= scores.median(), 1 + stage2, 0)
    assert task(b["x"], b["mask"]).tolist() == expected.tolist()
    task.detector.threshold.fill_(float("inf"))
    assert task(b["x"], b["mask"]).tolist() == [0] * 6
    task.detector.threshold.fill_(float("-inf"))
    assert task(b["x"], b["mask"]).tolist() == (1 + stage2).tolist()


def test_stage_2_learns_from_pain_segments_only():
    task, b = make_task(), batch()
    task.train()
    no_pain = b["y"] == 0
    total = task.step(b, "train").loss
    total.backward()
    assert task.estimator.head[-1].weight.grad.abs().sum() > 0
    task.zero_grad()
    only_no_pain = {k: v[no_pain] for k, v in b.items()}
    total = task.step(only_no_pain, "train").loss
    total.backward()
    grad = task.estimator.head[-1].weight.grad
    assert grad is None or grad.abs().sum() == 0  # no pain segment: stage 2 untouched
    assert task.detector.model.head[-1].weight.grad.abs().sum() > 0


@pytest.mark.e2e
@pytest.mark.slow
def test_hierarchical_config_trains_both_stages_and_reports_three_classes(run_lbp):
    small_args = [
        a.replace("model.init_args.model", "model.init_args.detector_model") for a in SMALL
    ]
    small_args += [
        a.replace("model.init_args.model", "model.init_args.estimator_model") for a in SMALL
    ]
    run = run_lbp(
        "fit", "--config", "experiments/emopain/hierarchical.yaml", *small_args, *FAST, tiny=False
    )
    metrics = json.loads((run / "metrics.json").read_text())
    for key in (
        "test/accuracy",
        "test/f1/no_pain",
        "test/f1/low",
        "test/f1/high",
        "test/mcc",
        "test/f1_macro",
        "test/threshold",
        "test/stage1/accuracy",
        "test/stage1/auroc",
        "test/stage2/accuracy",
    ):
        assert key in metrics, key
    for png in ("confusion_test.png", "roc_test.png", "scores_test.png"):
        assert (run / png).is_file(), png


@pytest.mark.e2e
@pytest.mark.slow
def test_stages_trained_apart_combine_from_their_checkpoints(run_lbp):
    stage1 = run_lbp(
        "fit", "--config", "experiments/emopain/anomaly/pain_loss.yaml", *SMALL, *FAST, tiny=False
    )
    stage2 = run_lbp(
        "fit", "--config", "experiments/emopain/hierarchical_stage2.yaml", *SMALL, *FAST, tiny=False
    )
    m1 = json.loads((stage1 / "metrics.json").read_text())
    m2 = json.loads((stage2 / "metrics.json").read_text())
    combined = run_lbp(
        "test",
        "--config",
        "experiments/emopain/hierarchical_combined.yaml",
        "--model.init_args.detector_checkpoint",
        m1["best_checkpoint"],
        "--model.init_args.estimator_checkpoint",
        m2["best_checkpoint"],
        *FAST,
        tiny=False,
    )
    m = json.loads((combined / "metrics.json").read_text())
    for key in ("test/accuracy", "test/f1/no_pain", "test/f1/low", "test/f1/high", "test/mcc"):
        assert key in m, key
    # the loaded stages do exactly what they did in their own runs: same threshold, same
    # pain/no-pain decisions, same low/high accuracy on the pain segments
    assert m["test/threshold"] == pytest.approx(m1["test/threshold"])
    assert m["test/stage1/accuracy"] == pytest.approx(m1["test/accuracy"])
    assert m["test/stage2/accuracy"] == pytest.approx(m2["test/accuracy"])
    assert (combined / "confusion_test.png").is_file() and (combined / "roc_test.png").is_file()
