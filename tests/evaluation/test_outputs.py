"""Shared step outputs: every task's StepOutput, collected per epoch and gathered from
every process, so thresholds and recording metrics agree across devices."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from lbp_motion.evaluation.outputs import EpochOutputs, StepOutput, gather_across_processes
from lbp_motion.tasks.anomaly import choose_threshold

ROOT = Path(__file__).resolve().parents[2]


def test_per_sample_tensors_are_detached_float_and_on_the_cpu():
    logits = torch.randn(4, 3, requires_grad=True)
    out = StepOutput(
        loss=logits.sum(),
        target=torch.tensor([0, 1, 2, 0]),
        recording=torch.tensor([5, 5, 6, 6]),
        probs=logits.softmax(-1).double(),
        extra={"stage2": torch.tensor([1, 0, 1, 1])},
    )
    tensors = out.per_sample()
    assert set(tensors) == {"target", "recording", "probs", "stage2"}  # no loss, no scores
    assert not tensors["probs"].requires_grad and tensors["probs"].dtype == torch.float32
    assert all(t.device.type == "cpu" for t in tensors.values())


def test_epoch_outputs_concatenate_in_step_order_and_forget_after_gathering():
    outputs = EpochOutputs(("val", "test"))
    for i in range(3):
        outputs.add(
            "val",
            StepOutput(
                loss=torch.tensor(0.0),
                target=torch.full((2,), i),
                recording=torch.arange(2) + 10 * i,
                scores=torch.tensor([i, -i], dtype=torch.float64),
            ),
        )
    outputs.add("test", StepOutput(torch.tensor(0.0), torch.zeros(1), torch.zeros(1)))
    gathered = outputs.gather("val")  # no task: this process only
    assert gathered["target"].tolist() == [0, 0, 1, 1, 2, 2]
    assert gathered["recording"].tolist() == [0, 1, 10, 11, 20, 21]
    assert gathered["scores"].dtype == torch.float32
    assert outputs.gather("val") is None  # forgotten; test's outputs untouched
    assert len(outputs) == 1
    outputs.reset("test")
    assert len(outputs) == 0


def test_one_process_returns_the_tensor_itself():
    t = torch.arange(3)
    assert gather_across_processes(t, all_gather=None, world_size=1) is t


# Two real processes (gloo), each with its own share of the validation scores, as under
# `trainer.devices: 2`; Lightning's own all_gather collective.
WORKER = textwrap.dedent(
    """
    import json, sys
    from types import SimpleNamespace
    import torch, torch.distributed as dist
    from lightning.fabric.utilities.distributed import _all_gather_ddp_if_available
    from lbp_motion.evaluation.outputs import EpochOutputs, StepOutput
    from lbp_motion.evaluation.thresholds import select_threshold

    rank, init = int(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    data = json.loads(sys.argv[3])[rank]
    task = SimpleNamespace(
        _trainer=SimpleNamespace(world_size=2),
        device=torch.device("cpu"),
        all_gather=_all_gather_ddp_if_available,
    )
    outputs = EpochOutputs()
    for scores, labels in data:  # one step per batch, uneven sizes across ranks
        outputs.add("val", StepOutput(
            loss=torch.tensor(0.0), target=torch.tensor(labels),
            recording=torch.full((len(labels),), rank), scores=torch.tensor(scores),
        ))
    g = outputs.gather("val", task)
    threshold = float(select_threshold(g["scores"].numpy(), g["target"].numpy(), "f1", 95.0))
    print(json.dumps({"scores": g["scores"].tolist(), "target": g["target"].tolist(),
                      "recording": g["recording"].tolist(), "threshold": threshold}))
    dist.destroy_process_group()
    """
)

# f1 thresholds: rank 0 alone 0.51, rank 1 alone 0.11, both together 0.39
SHARES = [
    [([0.67, 0.29], [1, 0]), ([0.51], [1])],
    [([0.11, 0.39, 0.91], [1, 1, 1]), ([0.2, 0.52], [0, 1])],
]


@pytest.mark.e2e
def test_two_processes_gather_the_same_outputs_and_choose_the_same_threshold(tmp_path):
    init = f"file://{tmp_path / 'rendezvous'}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(rank), init, json.dumps(SHARES)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results[0] == results[1]  # every process sees all the data, in rank order
    all_scores = [s for share in SHARES for scores, _ in share for s in scores]
    all_labels = [y for share in SHARES for _, labels in share for y in labels]
    assert results[0]["scores"] == pytest.approx(all_scores)
    assert results[0]["target"] == all_labels
    assert results[0]["recording"] == [0, 0, 0, 1, 1, 1, 1, 1]
    pooled = choose_threshold(torch.tensor(all_scores), torch.tensor(all_labels), "f1", 95, 0.0)
    assert results[0]["threshold"] == pytest.approx(pooled)
    local = [
        choose_threshold(
            torch.tensor([s for scores, _ in share for s in scores]),
            torch.tensor([y for _, labels in share for y in labels]),
            "f1",
            95,
            0.0,
        )
        for share in SHARES
    ]
    assert local[0] != pytest.approx(pooled) and local[1] != pytest.approx(pooled)


def test_tasks_evaluate_what_their_steps_returned():
    """The anomaly task's threshold comes from the gathered validation outputs."""
    from lbp_motion.tasks.anomaly import AnomalyTask

    task = AnomalyTask(data_spec={"classes": ["normal", "pain"], "num_features": 4})
    task.log_dict = lambda values, **kw: setattr(task, "logged", values)
    outputs = {
        "scores": torch.tensor([0.1, 0.2, 0.7, 0.9]),
        "target": torch.tensor([0, 0, 1, 1]),
        "recording": torch.arange(4),
    }
    task.evaluate("val", outputs)
    assert 0.2 < task.threshold <= 0.7
    assert float(task.logged["val/accuracy"]) == 1.0
    assert float(task.logged["val/threshold"]) == pytest.approx(task.threshold)
