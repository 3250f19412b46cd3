"""MILTask: the skew ratios of the channels' batches, SMOTE balancing, the concatenated
features, and an end-to-end run from its config."""

import json

import pytest
import torch

from lbp_motion.models import LSTMDNNClassifier
from lbp_motion.tasks import MILTask
from lbp_motion.tasks.mil import oversample_indices, skewed_indices, smote_batch
from tests.conftest import EMOPAIN_ARGS

F, T = 4, 6
SPEC = {"num_features": F, "classes": ["non_protective", "protective"]}
#: tests/conf/tiny_emopain.yaml: tiny synthetic data, one quiet CPU epoch
FAST = EMOPAIN_ARGS


@pytest.mark.parametrize(("share", "pos", "neg"), [(0.75, 30, 10), (0.25, 10, 30), (0.5, 20, 20)])
def test_skewed_indices_have_the_asked_ratio(share, pos, neg):
    torch.manual_seed(0)
    positive = torch.tensor([True] * 5 + [False] * 35)  # 1:7 in the batch
    idx = skewed_indices(positive, share)
    assert len(idx) == 40
    assert int(positive[idx].sum()) == pos and int((~positive[idx]).sum()) == neg


def test_skewed_indices_without_one_group_draw_from_all():
    idx = skewed_indices(torch.zeros(8, dtype=torch.bool), 0.75)
    assert len(idx) == 8 and idx.max() < 8


def test_oversampling_and_smote_balance_the_batch():
    y = torch.tensor([0] * 9 + [1] * 3)
    assert torch.bincount(y[oversample_indices(y)]).tolist() == [9, 9]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, T, F, generator=g)
    mask = torch.ones(12, T, dtype=torch.bool)
    xs, ms, ys = smote_batch(x, mask, y)
    assert torch.bincount(ys).tolist() == [9, 9] and xs.shape == (18, T, F) and ms.shape == (18, T)
    torch.testing.assert_close(xs[:12], x)  # the real samples first, unchanged
    assert not any(
        torch.allclose(xs[i], x[j]) for i in range(12, 18) for j in range(12)
    )  # new, blended
    xs, _, ys = smote_batch(
        x[:10], mask[:10], y[:10]
    )  # one protective sample: random over-sampling
    assert torch.bincount(ys).tolist() == [9, 9]


def test_channels_get_their_skewed_batches_and_the_head_reads_all_features():
    torch.manual_seed(0)
    task = MILTask(
        data_spec=SPEC,
        model=lambda f, c: LSTMDNNClassifier(f, c, hidden_sizes=(8,), dense_sizes=(6,)),
    )
    assert len(task.model.channels) == 3 and task.model.head[-1].in_features == 18
    y = torch.tensor([1] * 4 + [0] * 12)
    b = {"x": torch.randn(16, T, F), "mask": torch.ones(16, T, dtype=torch.bool), "y": y}
    batches = task.channel_batches(b)
    assert torch.bincount(batches["positive"][2], minlength=2).tolist() == [4, 12]
    assert torch.bincount(batches["negative"][2], minlength=2).tolist() == [12, 4]
    assert torch.bincount(batches["smote"][2], minlength=2).tolist() == [12, 12]
    task.eval()
    feats = torch.cat([c.features(b["x"], b["mask"]) for c in task.model.channels], dim=-1)
    torch.testing.assert_close(task(b["x"], b["mask"]), task.model.head(feats))


@pytest.mark.e2e
@pytest.mark.slow
def test_mil_config_fits_end_to_end(run_lbp):
    small = [
        "--model.init_args.model.init_args.hidden_sizes",
        "[8]",
        "--model.init_args.model.init_args.dense_sizes",
        "[8]",
    ]
    run = run_lbp(
        "fit", "--config", "experiments/emopain/mil/protective.yaml", *small, *FAST, tiny=False
    )
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("test/accuracy", "test/f1/protective", "test/f1/non_protective", "test/mcc"):
        assert key in metrics, key
    assert (run / "confusion_test.png").is_file()
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert all(f"train/channel_{n}_loss" in header for n in ("positive", "negative", "smote"))
