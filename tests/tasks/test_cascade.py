"""CascadeTask: stage 2's input is the frames plus stage 1's per-frame protective
probability; stage 1 trained here on per-frame labels or loaded (frozen) from a run."""

import json

import pytest
import torch

from lbp_motion.errors import ConfigError
from lbp_motion.models import LSTMDNNClassifier
from lbp_motion.tasks import CascadeTask
from lbp_motion.trust import load_checkpoint
from tests.conftest import EMOPAIN_ARGS

F, T = 5, 8
SPEC = {"num_features": F, "classes": ["no_pain", "low", "high"], "aux_classes": ["a", "b", "c"]}
#: tests/conf/tiny_emopain.yaml: tiny synthetic data, one quiet CPU epoch
FAST = EMOPAIN_ARGS


def small(f, c):
    return LSTMDNNClassifier(f, c, hidden_sizes=(8,), dense_sizes=(8,), dropout=0.0)


def make_task(**kw):
    torch.manual_seed(0)
    return CascadeTask(data_spec=SPEC, model=small, stage1_model=small, **kw).eval()


def batch(n=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, T, F, generator=g)
    mask = torch.arange(T).expand(n, T) < torch.tensor([T, 5, 3, T][:n]).unsqueeze(1)
    x[~mask] = 0
    frames = (torch.rand(n, T, generator=g) > 0.5).long() * mask
    return {
        "x": x,
        "mask": mask,
        "y": torch.tensor([0, 1, 2, 1][:n]),
        "aux": torch.tensor([0, 1, 2, 0][:n]),
        "frame_protective": frames,
        "recording": torch.arange(n),
        "start": torch.zeros(n, dtype=torch.long),
    }


def test_stage_2_reads_the_features_plus_the_stage_1_probability():
    task, b = make_task(), batch()
    seen = {}
    task.model.register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0]))
    logits = task(b["x"], b["mask"])
    assert logits.shape == (4, 3)
    x2 = seen["x"]
    assert x2.shape == (4, T, F + 1) and task.model.encoder.layers[0].input_size == F + 1
    torch.testing.assert_close(x2[..., :F], b["x"])
    p = task.stage1.frame_logits(b["x"], b["mask"]).softmax(dim=-1)[..., 1] * b["mask"]
    torch.testing.assert_close(x2[..., F], p)
    assert (x2[..., F][~b["mask"]] == 0).all() and (x2[..., F][b["mask"]] > 0).all()


def test_stage_2_loss_never_trains_stage_1_and_stage_1_learns_from_frame_labels():
    task, b = make_task(stage1_weight=0.0), batch()
    task.train()
    _, loss = task.compute_loss(b, "train")
    loss.backward()
    assert all(p.grad is None for p in task.stage1.parameters())
    assert task.model.head[-1].weight.grad is not None
    task = make_task(stage1_weight=1.0).train()
    _, loss = task.compute_loss(b, "train")
    loss.backward()
    assert task.stage1.head[-1].weight.grad.abs().sum() > 0
    torch.testing.assert_close(
        task.stage1_loss(b),
        torch.nn.functional.cross_entropy(
            task.stage1.frame_logits(b["x"], b["mask"])[b["mask"]], b["frame_protective"][b["mask"]]
        ),
    )
    del b["frame_protective"]
    with pytest.raises(ConfigError, match="frame_protective"):
        task.compute_loss(b, "train")


@pytest.mark.e2e
@pytest.mark.slow
def test_cascade_config_trains_both_stages_and_reports_three_classes(run_lbp):
    args = []
    for part in ("model", "stage1_model"):
        args += [
            f"--model.init_args.{part}.init_args.hidden_sizes",
            "[8]",
            f"--model.init_args.{part}.init_args.dense_sizes",
            "[8]",
        ]
    run = run_lbp(
        "fit", "--config", "experiments/emopain/cascade/cascade.yaml", *args, *FAST, tiny=False
    )
    metrics = json.loads((run / "metrics.json").read_text())
    for key in (
        "test/accuracy",
        "test/f1/no_pain",
        "test/f1/low",
        "test/f1/high",
        "test/mcc",
        "test/stage1_loss",
    ):
        assert key in metrics, key
    assert (run / "confusion_test.png").is_file()


@pytest.mark.e2e
@pytest.mark.slow
def test_cascade_from_a_protective_run_keeps_stage_1_frozen(run_lbp):
    small_args = [
        "--model.init_args.model.init_args.hidden_sizes",
        "[8]",
        "--model.init_args.model.init_args.dense_sizes",
        "[8]",
    ]
    stage1 = run_lbp(
        "fit",
        "--config",
        "experiments/emopain/protective_lstm_dnn.yaml",
        *small_args,
        *FAST,
        "--test_after_fit",
        "false",
        tiny=False,
    )
    ckpt1 = json.loads((stage1 / "metrics.json").read_text())["best_checkpoint"]
    run = run_lbp(
        "fit",
        "--config",
        "experiments/emopain/cascade/from_stage1.yaml",
        *small_args,
        *FAST,
        "--model.init_args.stage1_checkpoint",
        ckpt1,
        tiny=False,
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert "test/f1/high" in metrics and "test/mcc" in metrics
    before = load_checkpoint(ckpt1)["state_dict"]
    after = load_checkpoint(metrics["best_checkpoint"])["state_dict"]
    stage1_keys = [k for k in after if k.startswith("stage1.")]
    assert stage1_keys
    for key in stage1_keys:
        torch.testing.assert_close(after[key], before["model." + key[len("stage1.") :]])
    assert (
        after["model.encoder.layers.0.weight_ih_l0"].shape[1] == 66 + 1
    )  # 66 coordinates + p(protective)
