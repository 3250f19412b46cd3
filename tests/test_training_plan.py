"""The training plan (lbp_motion/training_plan.py): a DataModule written by a user, a
plain LightningDataModule that knows nothing of federation or privacy, still gets
FedAvg's client partitions and averaging and DP-SGD's Poisson sampling, clipping and
accounting, because the strategy applies them to whatever training loader it returns."""

import math
import re
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from lbp_motion.errors import ConfigError
from lbp_motion.federated import FedAvgStrategy
from lbp_motion.federated.clients import FederatedLoader
from lbp_motion.models import TransformerClassifier
from lbp_motion.tasks import ClassificationTask
from lbp_motion.training_plan import (
    TrainingPlan,
    TrainingPlanStrategy,
    TrainingStage,
    default_strategy,
    planned_train_loader,
)
from tests.conftest import TINY_TRAINER, TINY_TRANSFORMER
from tests.replay import replayed_round

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = [f"p{i:02d}" for i in range(9)]  # 3 sites of 3 subjects; label = subject index % 2
WINDOWS, FRAMES, FEATURES = 5, 12, 6


class Windows(torch.utils.data.Dataset):
    """Batch dicts like the project's: x, mask, y, recording, start."""

    def __init__(self, x, y, recording):
        self.x, self.y, self.recording = x, y, recording

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {
            "x": self.x[i],
            "mask": torch.ones(FRAMES, dtype=torch.bool),
            "y": self.y[i],
            "recording": self.recording[i],
            "start": torch.tensor(0),
        }


class UserDataModule(pl.LightningDataModule):
    """A user's own DataModule: nothing federated or private in it."""

    def __init__(self, batch_size=8):
        super().__init__()
        self.batch_size = batch_size
        g = torch.Generator().manual_seed(0)
        n = len(SUBJECTS) * WINDOWS
        self.recording = torch.arange(n) // WINDOWS  # one recording per subject
        y = self.recording % 2
        x = torch.randn(n, FRAMES, FEATURES, generator=g) + y[:, None, None].float()
        self.train = Windows(x, y, self.recording)
        self.val = Windows(x[::3], y[::3], self.recording[::3])

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.val, batch_size=self.batch_size)


class UserDataModuleWithSubjects(UserDataModule):
    """The same, saying whose windows it holds: ``train_subject_info()``, the one optional
    method of the training-data protocol that FedAvg's partitions and subject-level
    privacy need."""

    def train_subject_info(self):
        rec = self.recording.tolist()
        return {
            "subject": [SUBJECTS[r] for r in rec],
            "label": [str(r % 2) for r in rec],
            "site": [f"site{r // 3}" for r in rec],
        }


def _task(seed=0):
    torch.manual_seed(seed)
    return ClassificationTask(
        model=lambda f, c: TransformerClassifier(f, c, **TINY_TRANSFORMER, dropout=0.0),
        data_spec={"num_features": FEATURES, "classes": ["low", "high"]},
        lr_decay=1.0,
    )


def _fit(dm, task, strategy, callbacks=(), epochs=1, tmp_path=None, **kw):
    trainer = pl.Trainer(
        **TINY_TRAINER,
        max_epochs=epochs,
        strategy=strategy,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        callbacks=list(callbacks),
        **kw,
    )
    trainer.fit(task, datamodule=dm)
    return trainer


class _Batches(pl.Callback):
    """The batches the task's training_step received."""

    def __init__(self):
        self.batches = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append({k: v.clone() for k, v in batch.items()})


# -- FedAvg -------------------------------------------------------------------------------------------
@pytest.mark.e2e
def test_a_user_datamodule_is_partitioned_by_subject_and_averaged_by_fedavg(tmp_path):
    dm, task, seen = UserDataModuleWithSubjects(), _task(), _Batches()
    start = {k: v.clone() for k, v in task.state_dict().items()}
    strategy = FedAvgStrategy(partition="site", num_clients=3, seed=0)
    trainer = _fit(dm, task, strategy, [seen], tmp_path=tmp_path)

    # partitioned: each client's batches hold only its own site's subjects, tagged with its id
    assert [set(c) for c in strategy.client_subjects] == [
        set(SUBJECTS[0:3]),
        set(SUBJECTS[3:6]),
        set(SUBJECTS[6:9]),
    ]
    assert strategy.num_examples == [3 * WINDOWS] * 3
    assert {int(c) for b in seen.batches for c in b["client"]} == {0, 1, 2}
    for batch in seen.batches:
        client = int(batch["client"][0])
        assert {SUBJECTS[r] for r in batch["recording"].tolist()} <= set(
            strategy.client_subjects[client]
        )
    (row,) = strategy.history
    assert row["clients"] == 3 and all(f"client_{k}/train_loss" in row for k in range(3))
    assert "val/loss" in trainer.callback_metrics  # validation stays the DataModule's own loader

    # averaged: the global model is the n_k-weighted mean of the clients' models, each
    # trained from the round's start on its own batches
    strategy.spec.round_fn = lambda: 0  # round 0's loader
    loader = planned_train_loader(dm, [strategy])
    assert isinstance(loader, FederatedLoader)
    expected = replayed_round(_task, start, loader, strategy.num_examples)
    for key, value in task.state_dict().items():
        torch.testing.assert_close(
            value, expected[key], msg=lambda m, key=key: f"{key}: {m}", atol=1e-6, rtol=1e-5
        )


@pytest.mark.e2e
def test_fedavg_names_a_datamodule_that_cannot_say_whose_samples_it_holds(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"FedAvgStrategy: .*UserDataModule does not say which subject.*"
        r"train_subject_info\(\)",
    ):
        _fit(UserDataModule(), _task(), FedAvgStrategy(num_clients=2), tmp_path=tmp_path)


# -- differential privacy -------------------------------------------------------------------------------
@pytest.mark.e2e
def test_a_user_datamodule_gets_poisson_sampling_clipping_and_accounting(tmp_path):
    pytest.importorskip("opacus")
    from opacus.accountants import RDPAccountant

    from lbp_motion.privacy import DifferentialPrivacy
    from lbp_motion.privacy.optimizer import UnitDPOptimizer
    from lbp_motion.privacy.sampling import GROUP_KEY, PoissonBatchSampler

    dm, seen = UserDataModule(), _Batches()
    dp = DifferentialPrivacy(noise_multiplier=1.1, max_grad_norm=0.5, delta=1e-5)
    trainer = _fit(dm, _task(), TrainingPlanStrategy(), [dp, seen], epochs=2, tmp_path=tmp_path)

    n = len(dm.train)
    q, steps = 8 / n, 2 * math.ceil(n / 8)
    assert isinstance(
        trainer.train_dataloader.batch_sampler, PoissonBatchSampler
    )  # the DP stage's loader
    assert trainer.train_dataloader.batch_sampler.sample_rate == pytest.approx(q)
    assert len(seen.batches) == steps and all(GROUP_KEY in b for b in seen.batches)
    assert len({len(b["y"]) for b in seen.batches}) > 1  # Poisson batches: random sizes
    optimizer = trainer.optimizers[0]
    assert (
        isinstance(optimizer, UnitDPOptimizer) and optimizer.max_grad_norm == 0.5
    )  # per-sample clipping
    expected = RDPAccountant()
    for _ in range(steps):
        expected.step(noise_multiplier=1.1, sample_rate=q)
    summary = dp.run_summary()
    assert summary["dp/steps"] == steps and summary["dp/units"] == n
    assert 0 < summary["dp/epsilon"] < math.inf
    assert summary["dp/epsilon"] == pytest.approx(expected.get_epsilon(delta=1e-5), rel=1e-9)
    # subject-level privacy needs the subjects: one line naming the DataModule
    with pytest.raises(
        ConfigError, match=r"UserDataModule does not say which subject.*train_subject_info"
    ):
        _fit(
            dm,
            _task(),
            TrainingPlanStrategy(),
            [DifferentialPrivacy(noise_multiplier=1.0, unit="subject")],
            tmp_path=tmp_path,
        )


@pytest.mark.e2e
def test_fedavg_and_dp_together_give_each_client_of_a_user_datamodule_its_own_ledger(tmp_path):
    pytest.importorskip("opacus")
    from lbp_motion.privacy import DifferentialPrivacy
    from lbp_motion.privacy.sampling import PoissonFederatedLoader

    dm = UserDataModuleWithSubjects()
    dp = DifferentialPrivacy(noise_multiplier=1.0, unit="subject", sample_rate=0.5)
    strategy = FedAvgStrategy(partition="site", num_clients=3)
    trainer = _fit(dm, _task(), strategy, [dp], epochs=1, tmp_path=tmp_path)
    assert isinstance(
        trainer.train_dataloader, PoissonFederatedLoader
    )  # federation first, then privacy
    summary = dp.run_summary()
    for k in range(3):
        assert summary[f"dp/client_{k}/units"] == 3  # the client's subjects, not its windows
        assert (
            summary[f"dp/client_{k}/steps"] == 2
            and 0 < summary[f"dp/client_{k}/epsilon"] < math.inf
        )
    assert 0 < strategy.history[0]["dp/epsilon"] == pytest.approx(summary["dp/epsilon"])


@pytest.mark.e2e
def test_dp_refuses_a_strategy_that_would_bypass_the_plan(tmp_path):
    pytest.importorskip("opacus")
    from lbp_motion.privacy import DifferentialPrivacy

    with pytest.raises(
        ConfigError, match=r"DifferentialPrivacy: .*\(SingleDeviceStrategy\) does not apply"
    ):
        _fit(
            UserDataModule(),
            _task(),
            "auto",
            [DifferentialPrivacy(noise_multiplier=1.0)],
            tmp_path=tmp_path,
        )


# -- the plan itself ------------------------------------------------------------------------------------
class _Tag(TrainingStage):
    def __init__(self, name, order, log):
        self.name, self.plan_order, self.log = name, order, log

    def transform_train_loader(self, loader, data, trainer):
        return [*loader, self.name]

    def around_training_step(self, batch, step):
        self.log.append(f"{self.name}>")
        out = step()
        self.log.append(f"<{self.name}")
        return out


def test_stages_apply_in_plan_order_and_the_first_wraps_the_step_outermost():
    log = []
    plan = TrainingPlan([_Tag("privacy", 200, log), _Tag("federation", 100, log)])
    assert plan.train_loader(["dm"], datamodule=None) == ["dm", "federation", "privacy"]
    assert plan.training_step({}, lambda: log.append("task") or 1.0) == 1.0
    assert log == ["federation>", "privacy>", "task", "<privacy", "<federation"]


def test_lbp_gives_a_plan_strategy_when_a_stage_needs_one():
    stage = _Tag("s", 1, [])
    assert isinstance(default_strategy("auto", [stage]), TrainingPlanStrategy)
    assert default_strategy("auto", [pl.Callback()]) == "auto"
    assert (
        default_strategy("auto", [stage], devices=2) == "auto"
    )  # DP then says it needs one device
    fedavg_strategy = FedAvgStrategy()
    assert default_strategy(fedavg_strategy, [stage]) is fedavg_strategy


def test_nothing_in_lbp_motion_assigns_a_training_loader_or_step():
    """The plan is the only way to change them: no monkey-patching of DataModules or tasks."""
    patched = re.compile(r"\.(train_dataloader|training_step)\s*=[^=]")
    hits = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in sorted((ROOT / "lbp_motion").rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if patched.search(line)
    ]
    assert hits == []


def test_the_plan_strategy_gives_the_accelerator_its_own_device(monkeypatch):
    """The accelerator sets up the strategy's root device before the strategy's setup():
    a FedAvg run on a GPU failed with "Device should be GPU, got cpu instead" when the
    device followed the accelerator only in setup()."""
    import lightning.pytorch as pl
    from lightning.pytorch.accelerators import CPUAccelerator
    from lightning.pytorch.demos.boring_classes import BoringModel

    from lbp_motion import training_plan

    given = []

    class Recording(CPUAccelerator):
        def setup_device(self, device):
            given.append(device)

    # stands for cuda:0 on a GPU machine: a device the strategy's default is not
    monkeypatch.setattr(training_plan, "accelerator_device", lambda trainer: torch.device("cpu", 0))
    trainer = pl.Trainer(
        accelerator=Recording(),
        strategy=training_plan.TrainingPlanStrategy(),
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(BoringModel())
    assert given == [torch.device("cpu", 0)]
