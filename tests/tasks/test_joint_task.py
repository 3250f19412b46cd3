"""JointTask: the joint loss, the exercise head and metric, a short Trainer run."""

import lightning.pytorch as pl
import pytest
import torch
from torch.nn.functional import cross_entropy

from lbp_motion.errors import ConfigError
from lbp_motion.models import LSTMDNNClassifier
from lbp_motion.tasks import JointTask, registered_tasks
from lbp_motion.tasks.joint import EMOPAIN_EXERCISES

F, T = 6, 12
AUX = ["bend", "walk", "sit"]
SPEC = {"num_features": F, "classes": ["none", "low", "high"], "aux_classes": AUX}


def small_model(f, c):
    return LSTMDNNClassifier(f, c, hidden_sizes=(8,), dense_sizes=(8,), dropout=0.0)


def make_task(**kw):
    torch.manual_seed(0)
    kw.setdefault("data_spec", SPEC)
    return JointTask(model=small_model, **kw)


def make_samples(n, seed=0):
    """Learnable toy data: feature 0 carries the main class, feature 1 the exercise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    aux = torch.randint(0, len(AUX), (n,), generator=g)
    x = 0.3 * torch.randn(n, T, F, generator=g)
    x[:, :, 0] += y.unsqueeze(1).float() - 1
    x[:, :, 1] += aux.unsqueeze(1).float() - 1
    lengths = torch.randint(T // 2, T + 1, (n,), generator=g)
    mask = torch.arange(T).expand(n, T) < lengths.unsqueeze(1)
    x[~mask] = 0.0
    return [
        {
            "x": x[i],
            "mask": mask[i],
            "y": y[i],
            "aux": aux[i],
            "recording": torch.tensor(i % 4),
            "start": torch.tensor(0),
        }
        for i in range(n)
    ]


def collate(samples):
    return torch.utils.data.default_collate(samples)


class ToyData(pl.LightningDataModule):
    def __init__(self, n=48, batch_size=16):
        super().__init__()
        self.train_set, self.val_set = make_samples(n, 0), make_samples(n // 2, 1)
        self.batch_size = batch_size

    def class_weights(self):
        return torch.ones(3)

    def _loader(self, data, shuffle=False):
        return torch.utils.data.DataLoader(data, batch_size=self.batch_size, shuffle=shuffle)

    def train_dataloader(self):
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self):
        return self._loader(self.val_set)

    def test_dataloader(self):
        return self._loader(self.val_set)

    def predict_dataloader(self):
        return self._loader(self.val_set)


def test_joint_loss_is_main_plus_weighted_exercise_ce():
    task = make_task(exercise_weight=0.5, class_weighted_loss=True).eval()
    task.class_weight = torch.tensor([1.0, 2.0, 0.5])
    batch = collate(make_samples(8))
    out = task.joint_losses(batch)
    logits, loss = out["logits"], out["loss"]
    main = task.model(batch["x"], batch["mask"])
    aux = task.exercise_head(task.model.features(batch["x"], batch["mask"]))
    torch.testing.assert_close(logits, main)
    expected = cross_entropy(
        main, batch["y"], weight=torch.tensor([1.0, 2.0, 0.5])
    ) + 0.5 * cross_entropy(aux, batch["aux"])
    torch.testing.assert_close(loss, expected)


def test_weight_zero_is_plain_cross_entropy_and_leaves_the_exercise_head_alone():
    task = make_task(exercise_weight=0.0).eval()
    batch = collate(make_samples(8))
    del batch["aux"]  # not needed without joint training
    logits, loss = task.compute_loss(batch, "train")
    torch.testing.assert_close(
        loss, cross_entropy(task.model(batch["x"], batch["mask"]), batch["y"])
    )
    loss.backward()
    assert task.exercise_head.weight.grad is None
    assert task.model.head[-1].weight.grad is not None


def test_aux_classes_are_required_for_joint_training():
    spec = {k: v for k, v in SPEC.items() if k != "aux_classes"}
    with pytest.raises(ConfigError, match="aux_classes"):
        make_task(data_spec=spec)
    task = make_task(data_spec=spec, exercise_weight=0)
    assert task.exercise_head.out_features == len(EMOPAIN_EXERCISES) == 9
    with pytest.raises(ConfigError, match="'aux'"):
        batch = collate(make_samples(4))
        del batch["aux"]
        make_task().joint_losses(batch)


def test_registered_as_entry_point():
    assert registered_tasks()["joint"] is JointTask


@pytest.mark.e2e
def test_trainer_fit_lowers_the_loss_and_logs_exercise_accuracy(tmp_path):
    data = ToyData()
    task = make_task(lr=2e-2, lr_decay=1.0)
    everything = collate(data.train_set)

    def joint_loss():
        task.eval()
        with torch.no_grad():
            loss = task.joint_losses(everything)["loss"].item()
        task.train()
        return loss

    before = joint_loss()
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(task, datamodule=data)
    after = joint_loss()
    assert after < before
    logged = trainer.callback_metrics
    for key in ("train/loss", "train/main_loss", "train/exercise_loss", "train/exercise_accuracy",
                "val/exercise_accuracy", "val/accuracy", "val/f1_macro", "val/recording_accuracy"):  # fmt: skip
        assert key in logged, key

    # the exercise accuracy is the exercise head's accuracy on the whole split
    (result,) = trainer.test(task, datamodule=data, verbose=False)
    val = collate(data.val_set)
    task.eval()
    with torch.no_grad():
        pred = task.exercise_head(task.model.features(val["x"], val["mask"])).argmax(1)
    assert result["test/exercise_accuracy"] == pytest.approx(
        (pred == val["aux"]).float().mean().item()
    )
    assert "test/accuracy" in result and "test/mcc" in result

    # predictions are the main head's probabilities
    out = trainer.predict(task, datamodule=data)
    probs = torch.cat([o["probs"] for o in out])
    assert probs.shape == (len(data.val_set), 3)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(probs)))


def test_fallback_exercise_names_match_the_emopain_reader():
    emopain = pytest.importorskip("lbp_motion.datamodules.emopain")
    assert tuple(emopain.EXERCISES) == EMOPAIN_EXERCISES
