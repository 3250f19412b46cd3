import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from lbp_motion.datamodules.tug import TUGDataModule
from lbp_motion.errors import ConfigError
from lbp_motion.federated import AggregationError, FedAvgStrategy, fedavg, server_momentum_update
from lbp_motion.federated.clients import mix_seed, select_clients
from lbp_motion.federated.partition import partition_subjects
from lbp_motion.models import TransformerClassifier
from lbp_motion.tasks import ClassificationTask
from lbp_motion.training_plan import planned_train_loader
from tests.conftest import TINY_TRAINER, TINY_TRANSFORMER, TINY_TUG
from tests.replay import replayed_round


# -- pure aggregation ------------------------------------------------------------------------
def test_fedavg_is_the_nk_weighted_mean_buffers_included():
    a = {
        "w": torch.tensor([1.0, 2.0]),
        "bn.running_mean": torch.tensor([0.0]),
        "bn.num_batches_tracked": torch.tensor(10),
    }
    b = {
        "w": torch.tensor([3.0, 6.0]),
        "bn.running_mean": torch.tensor([4.0]),
        "bn.num_batches_tracked": torch.tensor(13),
    }
    out = fedavg([a, b], [1, 3])
    torch.testing.assert_close(out["w"], torch.tensor([2.5, 5.0]))
    torch.testing.assert_close(out["bn.running_mean"], torch.tensor([3.0]))
    assert (
        out["bn.num_batches_tracked"].dtype == torch.int64
        and out["bn.num_batches_tracked"].item() == 12
    )  # 12.25
    assert out["w"].dtype == torch.float32
    with pytest.raises(AggregationError):
        fedavg([a, b], [1])


def test_fedavgm_with_zero_momentum_is_fedavg_and_momentum_accumulates():
    g = {"w": torch.tensor([1.0])}
    avg = {"w": torch.tensor([0.5])}
    new, v = server_momentum_update(g, avg, None, momentum=0.0)
    torch.testing.assert_close(new["w"], avg["w"])
    new2, v2 = server_momentum_update(new, {"w": torch.tensor([0.25])}, v, momentum=0.9)
    # v = 0.9 * 0.5 + (0.5 - 0.25) = 0.7 -> w = 0.5 - 0.7
    torch.testing.assert_close(new2["w"], torch.tensor([-0.2]))


# -- partitions and client data ----------------------------------------------------------------
def test_partitions_keep_subjects_at_one_client():
    subjects = [f"s{i}" for i in range(12)]
    labels = {s: "abc"[i % 3] for i, s in enumerate(subjects)}
    sites = {s: f"site{i % 3}" for i, s in enumerate(subjects)}
    for scheme in ("iid", "dirichlet", "site"):
        clients = partition_subjects(
            subjects, scheme=scheme, num_clients=3, labels=labels, sites=sites, alpha=0.3
        )
        flat = [s for c in clients for s in c]
        assert sorted(flat) == sorted(subjects) and len(flat) == len(set(flat)) and all(clients)
    assert partition_subjects(subjects, scheme="site", sites=sites)[1] == ["s1", "s10", "s4", "s7"]
    skew = partition_subjects(
        subjects, scheme="dirichlet", num_clients=3, labels=labels, alpha=0.05, seed=1
    )
    mixes = [{labels[s] for s in c} for c in skew]
    assert any(len(m) < 3 for m in mixes)  # label skew: some client misses a class
    with pytest.raises(ConfigError, match="would hold no training subject"):
        partition_subjects(subjects, scheme="groups", groups=[subjects[:6], []])
    with pytest.raises(ConfigError, match="num_clients=20"):
        partition_subjects(subjects, scheme="iid", num_clients=20)


def test_client_selection_is_seeded_per_round():
    assert select_clients(5, 1.0, 0, 3) == [0, 1, 2, 3, 4]
    picks = [tuple(select_clients(10, 0.3, 0, r)) for r in range(6)]
    assert all(len(p) == 3 for p in picks) and len(set(picks)) > 1
    assert picks == [tuple(select_clients(10, 0.3, 0, r)) for r in range(6)]


@pytest.fixture(scope="module")
def sited_tug(tmp_path_factory):
    from lbp_motion.datasets.synthetic import generate_tug_dataset

    return generate_tug_dataset(tmp_path_factory.mktemp("sited"), **TINY_TUG["sites"])


def test_each_client_loader_yields_only_its_own_samples(sited_tug):
    dm = TUGDataModule(str(sited_tug), stride=15, batch_size=8)
    dm.setup("fit")
    strategy = FedAvgStrategy(num_clients=3, partition="site", local_epochs=2, seed=0)
    loader = planned_train_loader(dm, [strategy])
    counts, clients = strategy.num_examples, strategy.client_subjects
    assert sum(counts) == dm.num_real_train_samples
    subjects_of_recording = np.asarray(dm.recording_subjects)
    seen = {c: 0 for c in range(3)}
    for batch in loader:
        client = int(batch["client"][0])
        assert (batch["client"] == client).all()
        assert set(subjects_of_recording[batch["recording"].numpy()]) <= set(clients[client])
        seen[client] += len(batch["y"])
    assert seen == {c: 2 * n for c, n in enumerate(counts)}  # E = 2 local epochs each


# -- the strategy --------------------------------------------------------------------------------
def _task(dm, dropout=0.0):
    spec = dm.spec
    return ClassificationTask(
        model=lambda f, c: TransformerClassifier(f, c, **TINY_TRANSFORMER, dropout=dropout),
        data_spec=spec,
    )


def _trainer(tmp_path, strategy=None, epochs=2, **kw):
    return pl.Trainer(
        **TINY_TRAINER,
        max_epochs=epochs,
        strategy=strategy or "auto",
        default_root_dir=tmp_path,
        **kw,
    )


class _EpochSeededLoader:
    """The DataLoader that client 0 gets in a round, (seed 0, client 0, epoch, local
    epoch 0), built when iteration starts so the epoch is the current one."""

    def __init__(self, dataset, batch_size, epoch_fn):
        self.dataset, self.batch_size, self.epoch_fn = dataset, batch_size, epoch_fn

    def __len__(self):
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self):
        g = torch.Generator().manual_seed(mix_seed(0, 0, self.epoch_fn(), 0))
        return iter(
            torch.utils.data.DataLoader(
                self.dataset, batch_size=self.batch_size, shuffle=True, generator=g
            )
        )


class _ClientZeroOrder(TUGDataModule):
    """Plain (non-federated) training on the exact batches that client 0 gets."""

    def train_dataloader(self):
        return _EpochSeededLoader(
            self._datasets["train"], self.batch_size, lambda: self.trainer.current_epoch
        )


@pytest.mark.e2e
def test_one_client_one_local_epoch_equals_plain_training(tiny_tug, tmp_path):
    pl.seed_everything(0)
    fed_dm = TUGDataModule(str(tiny_tug), stride=15, batch_size=16)
    fed_dm.setup("fit")
    fed_task = _task(fed_dm)
    plain_dm = _ClientZeroOrder(str(tiny_tug), stride=15, batch_size=16)
    plain_dm.setup("fit")
    plain_task = _task(plain_dm)
    plain_task.load_state_dict(fed_task.state_dict())
    strategy = FedAvgStrategy(
        num_clients=1, partition="iid", local_epochs=1, persist_optimizer_state=True
    )
    _trainer(tmp_path / "fed", strategy, epochs=3).fit(fed_task, datamodule=fed_dm)
    _trainer(tmp_path / "plain", epochs=3).fit(plain_task, datamodule=plain_dm)
    for (name, a), b in zip(fed_task.state_dict().items(), plain_task.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


@pytest.mark.e2e
def test_fedavg_round_equals_the_weighted_mean_of_client_models(sited_tug, tmp_path):
    dm = TUGDataModule(str(sited_tug), stride=15, batch_size=16)
    dm.setup("fit")
    task = _task(dm)
    start = {k: v.clone() for k, v in task.state_dict().items()}
    strategy = FedAvgStrategy(partition="site", num_clients=3, seed=0)
    _trainer(tmp_path, strategy, epochs=1, limit_val_batches=0).fit(task, datamodule=dm)
    # replay each client's local epoch by hand from the same start and batches (round 0)
    strategy.spec.round_fn = lambda: 0
    loader = planned_train_loader(dm, [strategy])
    expected = replayed_round(lambda: _task(dm), start, loader, strategy.num_examples)
    for key, value in task.state_dict().items():
        torch.testing.assert_close(
            value, expected[key], msg=lambda m, key=key: f"{key}: {m}", atol=1e-6, rtol=1e-5
        )


class _Flaky(ClassificationTask):
    """Raises on client 1's batches."""

    def training_step(self, batch, batch_idx):
        if int(batch["client"][0]) == 1:
            raise RuntimeError("disk full at client 1")
        return super().training_step(batch, batch_idx)


@pytest.mark.e2e
def test_failing_client_is_left_out_and_min_clients_fails_clearly(sited_tug, tmp_path):
    dm = TUGDataModule(str(sited_tug), stride=15, batch_size=16)
    dm.setup("fit")
    task = _Flaky(
        model=lambda f, c: TransformerClassifier(f, c, **TINY_TRANSFORMER),
        data_spec=dm.spec,
    )
    strategy = FedAvgStrategy(partition="site", num_clients=3, min_clients=2)
    _trainer(tmp_path / "a", strategy, epochs=1).fit(task, datamodule=dm)
    assert strategy.history[-1]["clients"] == 2 and strategy.history[-1]["failed"] == "1"
    task = _Flaky(
        model=lambda f, c: TransformerClassifier(f, c, **TINY_TRANSFORMER),
        data_spec=dm.spec,
    )
    strict = FedAvgStrategy(partition="site", num_clients=3, min_clients=3)
    with pytest.raises(AggregationError, match="at least min_clients=3"):
        _trainer(tmp_path / "b", strict, epochs=1).fit(task, datamodule=dm)


@pytest.mark.e2e
def test_resume_gives_the_same_final_weights(sited_tug, tmp_path):
    from lbp_motion.cli import main
    from tests.conftest import TINY_ARGS

    base = [
        "--config",
        "experiments/tug_fedavg.yaml",
        "--data.root",
        str(sited_tug),
        *TINY_ARGS,
        "--model.model.init_args.dropout",
        "0.1",
        "--test_after_fit",
        "false",
    ]
    assert (
        main(["fit", *base, "--trainer.max_epochs", "4", "--run.out_dir", str(tmp_path / "full")])
        == 0
    )
    assert (
        main(["fit", *base, "--trainer.max_epochs", "2", "--run.out_dir", str(tmp_path / "half")])
        == 0
    )
    half = tmp_path / "half" / "tug-fedavg" / "version_0" / "checkpoints" / "last.ckpt"
    assert (
        main(
            [
                "fit",
                *base,
                "--trainer.max_epochs",
                "4",
                "--run.out_dir",
                str(tmp_path / "half"),
                "--ckpt_path",
                str(half),
            ]
        )
        == 0
    )
    full = torch.load(
        tmp_path / "full" / "tug-fedavg" / "version_0" / "checkpoints" / "last.ckpt",
        weights_only=False,
    )
    resumed = torch.load(
        tmp_path / "half" / "tug-fedavg" / "version_1" / "checkpoints" / "last.ckpt",
        weights_only=False,
    )
    assert full["epoch"] == resumed["epoch"] == 3
    for key, value in full["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, msg=key)
    rounds = (
        (tmp_path / "full" / "tug-fedavg" / "version_0" / "rounds.csv").read_text().splitlines()
    )
    assert len(rounds) == 5 and rounds[0].startswith("round,") and "val/f1_macro" in rounds[0]


class _Exploding(ClassificationTask):
    """Client 2's weights become NaN after its first step."""

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if int(batch["client"][0]) == 2:
            with torch.no_grad():
                next(self.parameters()).fill_(float("nan"))


@pytest.mark.e2e
def test_non_finite_client_weights_are_left_out(sited_tug, tmp_path):
    dm = TUGDataModule(str(sited_tug), stride=15, batch_size=16)
    dm.setup("fit")
    task = _Exploding(
        model=lambda f, c: TransformerClassifier(f, c, **TINY_TRANSFORMER),
        data_spec=dm.spec,
    )
    strategy = FedAvgStrategy(partition="site", num_clients=3)
    _trainer(tmp_path, strategy, epochs=1).fit(task, datamodule=dm)
    assert strategy.history[-1]["clients"] == 2 and strategy.history[-1]["failed"] == "2"
    assert all(torch.isfinite(v).all() for v in task.state_dict().values() if v.is_floating_point())


@pytest.mark.e2e
def test_fedprox_keeps_clients_closer_to_the_global_model(sited_tug, tmp_path):
    def drift(mu):
        pl.seed_everything(0)
        dm = TUGDataModule(str(sited_tug), stride=15, batch_size=8)
        dm.setup("fit")
        task = ClassificationTask(
            model=lambda f, c: TransformerClassifier(f, c, **TINY_TRANSFORMER, dropout=0.0),
            data_spec=dm.spec,
            lr=1e-2,
        )
        start = [p.detach().clone() for p in task.parameters()]
        _trainer(
            tmp_path / str(mu),
            FedAvgStrategy(partition="site", num_clients=3, mu=mu),
            epochs=1,
            limit_val_batches=0,
        ).fit(task, datamodule=dm)
        return (
            sum((p.detach() - s).pow(2).sum() for p, s in zip(task.parameters(), start))
            .sqrt()
            .item()
        )

    assert drift(50.0) < 0.8 * drift(0.0)


@pytest.mark.e2e
def test_bad_strategy_options_give_one_line(tmp_path, capsys):
    from lbp_motion.cli import main

    code = main(
        [
            "fit",
            "--config",
            "experiments/tug_fedavg.yaml",
            "--trainer.strategy.init_args.local_epochs",
            "0",
            "--trainer.strategy.init_args.alpha",
            "-1",
            "--run.wandb",
            "disabled",
            "--run.out_dir",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert (
        code == 2
        and "lbp: error: trainer.strategy: local_epochs=0; expected at least 1; alpha=-1.0" in err
    )
    with pytest.raises(ConfigError, match="more than one group"):
        partition_subjects(["a", "b", "c"], scheme="groups", groups=[["a", "b"], ["b", "c"]])
