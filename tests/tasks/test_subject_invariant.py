"""SubjectInvariantTask: the gradient reversal, the same-class restriction, the ramp,
subject ids in TUG batches, and the property it exists for: its encoder's features
tell the training subjects of a class apart less than a plain classifier's, while the
class stays readable."""

from functools import partial

import numpy as np
import pytest
import torch

from lbp_motion.datamodules.tug import TUGDataModule
from lbp_motion.errors import ConfigError
from lbp_motion.models import TransformerClassifier
from lbp_motion.tasks import SubjectInvariantTask
from lbp_motion.tasks.subject_invariant import (
    adversary_schedule,
    reverse_gradient,
    same_class_logits,
)

SPEC = {"num_features": 8, "classes": ["a", "b"]}


def _task(weight, **kw):
    torch.manual_seed(0)
    model = partial(TransformerClassifier, d_model=16, num_layers=1, num_heads=2, dropout=0.0)
    return SubjectInvariantTask(
        model=model, adversary_weight=weight, max_subjects=16, data_spec=SPEC, lr=3e-3, **kw
    )


def test_reverse_gradient_is_identity_forward_and_negated_scaled_backward():
    x = torch.randn(5, 3, requires_grad=True)
    y = reverse_gradient(x, 0.7)
    assert torch.equal(y, x)
    upstream = torch.randn(5, 3)
    y.backward(upstream)
    torch.testing.assert_close(x.grad, -0.7 * upstream)


def test_same_class_logits_keep_only_subjects_of_the_windows_class():
    table = torch.zeros(4, 2, dtype=torch.bool)
    table[0, 0] = table[1, 0] = table[2, 1] = table[3, 1] = True
    table[1, 1] = True  # a subject with windows of both classes competes in both
    logits = torch.zeros(3, 4)
    out = same_class_logits(logits, torch.tensor([0, 1, 1]), table)
    assert torch.isfinite(out).tolist() == [
        [True, True, False, False],
        [False, True, True, True],
        [False, True, True, True],
    ]


def test_ramp_starts_at_zero_rises_and_ends_near_one():
    values = [adversary_schedule(p) for p in np.linspace(0, 1, 11)]
    assert values[0] == 0.0 and values[-1] > 0.99
    assert all(b > a for a, b in zip(values, values[1:]))
    assert adversary_schedule(-1) == 0.0 and adversary_schedule(2) == adversary_schedule(1)


def test_bad_arguments_and_batches_without_subjects_are_refused():
    with pytest.raises(ConfigError, match="adversary_weight=-1"):
        _task(-1.0)
    with pytest.raises(ConfigError, match="max_subjects=1"):
        SubjectInvariantTask(max_subjects=1, data_spec=SPEC)
    task = _task(1.0)
    batch = {"x": torch.zeros(2, 5, 8), "mask": torch.ones(2, 5, dtype=torch.bool)}
    batch["y"] = torch.tensor([0, 1])
    with pytest.raises(ConfigError, match="no 'subject'"):
        task.adversary_losses(batch)
    with pytest.raises(ConfigError, match="subject id 16"):
        task.adversary_losses({**batch, "subject": torch.tensor([3, 16])})


def test_tug_batches_carry_the_subject_of_each_window(tiny_tug):
    dm = TUGDataModule(root=str(tiny_tug), stride=15)
    dm.setup("fit")
    names = sorted(set(dm.recording_subjects))
    for split in ("train", "val", "test"):
        ds = dm._datasets[split]
        for i in range(0, len(ds), 7):
            item = ds[i]
            recording = int(item["recording"])
            assert names[int(item["subject"])] == dm.recording_subjects[recording]
    bags = TUGDataModule(root=str(tiny_tug), stride=15, unit="recording", max_windows=4)
    bags.setup("fit")
    item = bags._datasets["train"][0]
    assert names[int(item["subject"])] == bags.recording_subjects[int(item["recording"])]


def _subjects_data(rng, n_per_subject=24):
    """2 classes x 4 subjects; each window = a weak class direction + a strong direction
    of its subject + noise, over 5 frames."""
    class_dir = rng.normal(size=(2, 8))
    subject_dir = rng.normal(size=(8, 8)) * 2.0
    xs, ys, ss = [], [], []
    for s in range(8):
        y = s // 4
        base = 0.6 * class_dir[y] + subject_dir[s]
        x = base + rng.normal(scale=0.5, size=(n_per_subject, 5, 8))
        xs.append(x)
        ys += [y] * n_per_subject
        ss += [s] * n_per_subject
    x = torch.tensor(np.concatenate(xs), dtype=torch.float32)
    return x, torch.tensor(ys), torch.tensor(ss)


def _train(weight, steps=150):
    """Train the task on the toy data (full batch); the adversary's accuracy at naming
    each window's subject among the subjects of its class (chance 1/4) and the class
    accuracy, at the last step."""
    x, y, s = _subjects_data(np.random.default_rng(0))
    task = _task(weight)
    optimizer = torch.optim.Adam(task.parameters(), lr=3e-3)
    batch = {"x": x, "mask": torch.ones(len(y), 5, dtype=torch.bool), "y": y, "subject": s}
    for _ in range(steps):
        optimizer.zero_grad()
        out = task.adversary_losses(batch)
        out["loss"].backward()
        optimizer.step()
    subject_accuracy = (out["subject_logits"].argmax(-1) == s).float().mean().item()
    class_accuracy = (out["logits"].argmax(-1) == y).float().mean().item()
    return subject_accuracy, class_accuracy


def test_the_reversed_gradient_keeps_the_adversary_from_naming_subjects_of_a_class():
    # without reversal (weight 0) the head learns on features that keep who is who;
    # with it the encoder removes that, and the same head stays near chance (1/4)
    plain_subject, plain_class = _train(0.0)
    invariant_subject, invariant_class = _train(1.0)
    assert plain_subject > 0.9
    assert invariant_subject < 0.6
    assert plain_class > 0.9 and invariant_class > 0.9


class _NoFeatures(torch.nn.Module):
    def __init__(self, in_features, num_classes):
        super().__init__()
        self.linear = torch.nn.Linear(in_features, num_classes)

    def forward(self, x, mask=None):
        return self.linear(x.mean(1))


@pytest.mark.parametrize("task", ["SubjectInvariantTask", "JointTask"])
def test_a_head_on_the_features_needs_a_model_with_features(task):
    import lbp_motion.tasks as tasks

    spec = {**SPEC, "aux_classes": ["e0", "e1"]}
    with pytest.raises(ConfigError, match=f"{task}: _NoFeatures has no features"):
        getattr(tasks, task)(model=_NoFeatures, data_spec=spec)
