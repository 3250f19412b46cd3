"""Vectorised local training (``vectorize: true``) against the sequential rounds."""

import lightning.pytorch as pl
import pytest
import torch

from lbp_motion.datamodules.tug import TUGDataModule
from lbp_motion.errors import ConfigError
from lbp_motion.federated import FedAvgStrategy
from lbp_motion.federated.vectorized import VectorizedLoader, check_vectorizable, clients_that_fit
from lbp_motion.models import TransformerClassifier
from lbp_motion.models.cnn import CNN1DClassifier
from lbp_motion.models.recurrent import BiLSTMClassifier, LSTMDNNClassifier
from lbp_motion.tasks import ClassificationTask
from lbp_motion.tasks.joint import JointTask
from lbp_motion.training_plan import planned_train_loader

pytestmark = pytest.mark.e2e  # Trainer fits of the strategy


@pytest.fixture(scope="module")
def sited_tug(tmp_path_factory):
    from lbp_motion.datasets.synthetic import generate_tug_dataset

    # unequal clinics after the held-out split, so that clients have different numbers of
    # batches and last batches of different sizes
    return generate_tug_dataset(
        tmp_path_factory.mktemp("sited_vec"),
        num_subjects=12,
        recordings_per_subject=1,
        sites=3,
        seed=2,
    )


MODELS = {
    "transformer": lambda f, c: TransformerClassifier(
        f, c, d_model=16, num_layers=1, num_heads=2, dropout=0.0
    ),
    "cnn": lambda f, c: CNN1DClassifier(f, c, channels=(8, 8), dropout=0.0),
    "lstm": lambda f, c: BiLSTMClassifier(f, c, hidden_sizes=(8, 6), dropout=0.0),
    "lstm_dnn": lambda f, c: LSTMDNNClassifier(
        f, c, hidden_sizes=(8, 6), dense_sizes=(8,), dropout=0.0
    ),
}


def _data(root, batch_size=8):
    dm = TUGDataModule(str(root), stride=10, batch_size=batch_size)
    dm.setup("fit")
    return dm


def _fit(task, dm, strategy, tmp_path, epochs=2, **kw):
    pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        strategy=strategy,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        **kw,
    ).fit(task, datamodule=dm)


def _adamw(params):
    # eps well above float32 noise: a few parameters have a gradient that is zero in exact
    # arithmetic (an attention key bias, a bias before BatchNorm); at eps=1e-8 Adam turns
    # the different round-off of the two modes there into full-size steps of either sign
    return torch.optim.AdamW(params, lr=5e-3, eps=1e-4)


def _both(dm, model, tmp_path, epochs=2, **options):
    """Final weights of the sequential and the vectorised run from the same start."""
    torch.manual_seed(0)
    first = ClassificationTask(model=model, data_spec=dm.spec)
    start = {k: v.clone() for k, v in first.state_dict().items()}
    out = []
    for vectorize in (False, True):
        task = ClassificationTask(model=model, data_spec=dm.spec, optimizer=_adamw)
        task.load_state_dict(start)
        strategy = FedAvgStrategy(
            partition="site", num_clients=3, local_epochs=2, vectorize=vectorize, **options
        )
        _fit(task, dm, strategy, tmp_path / str(vectorize), epochs=epochs)
        out.append((task.state_dict(), strategy))
    return out


def test_the_loader_gives_every_client_its_own_batches_side_by_side(sited_tug):
    dm = _data(sited_tug)
    seq = FedAvgStrategy(partition="site", num_clients=3, local_epochs=2)
    vec = FedAvgStrategy(partition="site", num_clients=3, local_epochs=2, vectorize=True)
    sequential = list(planned_train_loader(dm, [seq]))
    loader = planned_train_loader(dm, [vec])
    assert isinstance(loader, VectorizedLoader)
    items = list(loader)
    assert len(items) == len(loader)
    per_client = {c: [b for b in sequential if int(b["client"][0]) == c] for c in range(3)}
    counts = sorted(len(v) for v in per_client.values())
    assert counts[0] < counts[-1]  # clients run out of batches at different steps
    for k, client in enumerate(items[0]["clients"].tolist()):
        mine = [item["batches"][k] for item in items]
        real = [b for b in mine if b is not None]
        assert mine[: len(real)] == real  # a client's batches come first, then None
        assert len(real) == len(per_client[client])
        for a, b in zip(real, per_client[client]):
            torch.testing.assert_close(a["x"], b["x"])
            torch.testing.assert_close(a["y"], b["y"])


@pytest.mark.parametrize("name", ["transformer", "cnn"])
def test_a_vectorised_round_gives_the_sequential_weights(sited_tug, tmp_path, name):
    dm = _data(sited_tug)
    (seq, _), (vec, strategy) = _both(dm, MODELS[name], tmp_path)
    assert strategy.history and all(row["clients"] == 3 for row in strategy.history)
    moved = False
    for key, value in seq.items():
        torch.testing.assert_close(
            vec[key], value, atol=1e-4, rtol=1e-3, msg=lambda m, key=key: f"{key}: {m}"
        )
        moved |= key.endswith("weight") and value.dtype.is_floating_point
    assert moved


def test_vectorised_fedprox_and_server_optimiser_give_the_sequential_weights(sited_tug, tmp_path):
    dm = _data(sited_tug)
    # tau above float32 noise, for the reason of _adamw (FedAdam divides by sqrt(v) + tau)
    options = {"mu": 0.5, "server_optimizer": "adam", "server_lr": 0.05, "server_tau": 0.05}
    (seq, _), (vec, _) = _both(dm, MODELS["transformer"], tmp_path, **options)
    for key, value in seq.items():
        torch.testing.assert_close(
            vec[key], value, atol=1e-4, rtol=1e-3, msg=lambda m, key=key: f"{key}: {m}"
        )


def test_vectorised_local_layers_stay_at_their_client(sited_tug, tmp_path):
    dm = _data(sited_tug)
    options = {"fedbn": True}
    (seq, s_seq), (vec, s_vec) = _both(dm, MODELS["transformer"], tmp_path, **options)
    for key, value in seq.items():
        torch.testing.assert_close(
            vec[key], value, atol=1e-4, rtol=1e-3, msg=lambda m, key=key: f"{key}: {m}"
        )
    for client in range(3):
        for key, value in s_seq.local_states[client].items():
            torch.testing.assert_close(s_vec.local_states[client][key], value, atol=1e-4, rtol=1e-3)


def test_chunks_of_clients_give_the_same_weights(sited_tug, tmp_path):
    dm = _data(sited_tug)
    (seq, _), (vec, _) = _both(dm, MODELS["cnn"], tmp_path, epochs=1, vectorize_chunk=2)
    for key, value in seq.items():
        torch.testing.assert_close(vec[key], value, atol=1e-4, rtol=1e-3, msg=key)
    assert clients_that_fit(300 * 2**20, 10 * 2**30) == 27  # 80 % of 10 GiB / 300 MiB
    assert clients_that_fit(20 * 2**30, 10 * 2**30) == 1


@pytest.mark.parametrize("name", ["lstm", "lstm_dnn"])
def test_the_lstm_family_is_vectorised_too(sited_tug, tmp_path, name):
    dm = _data(sited_tug)
    (seq, _), (vec, _) = _both(dm, MODELS[name], tmp_path, epochs=1)
    for key, value in seq.items():
        torch.testing.assert_close(
            vec[key], value, atol=1e-4, rtol=1e-3, msg=lambda m, key=key: f"{key}: {m}"
        )


def test_dropout_runs_repeat_and_train_metrics_are_logged(sited_tug, tmp_path):
    dm = _data(sited_tug)
    model = lambda f, c: TransformerClassifier(  # noqa: E731
        f, c, d_model=16, num_layers=1, num_heads=2, dropout=0.3
    )
    finals = []
    for run in range(2):
        torch.manual_seed(0)
        task = ClassificationTask(model=model, data_spec=dm.spec)
        strategy = FedAvgStrategy(partition="site", num_clients=3, vectorize=True, seed=3)
        trainer = pl.Trainer(
            max_epochs=1, accelerator="cpu", strategy=strategy, logger=False, enable_progress_bar=False,
            enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0,
            default_root_dir=tmp_path / str(run),
        )  # fmt: skip
        trainer.fit(task, datamodule=dm)
        finals.append(task.state_dict())
        assert 0 < float(trainer.callback_metrics["train/loss"]) < 10
        assert "train/accuracy" in trainer.callback_metrics
    for key, value in finals[0].items():
        torch.testing.assert_close(finals[1][key], value, msg=key)


def test_what_cannot_be_vectorised_is_refused_with_the_reason(sited_tug, tmp_path):
    dm = _data(sited_tug)
    for options, match in [
        ({"scaffold": True}, "scaffold"),
        ({"persist_optimizer_state": True}, "persist_optimizer_state"),
    ]:
        task = ClassificationTask(model=MODELS["transformer"], data_spec=dm.spec)
        strategy = FedAvgStrategy(partition="site", num_clients=3, vectorize=True, **options)
        with pytest.raises(ConfigError, match=match):
            _fit(task, dm, strategy, tmp_path, epochs=1)
    task = ClassificationTask(model=MODELS["transformer"], data_spec=dm.spec)
    strategy = FedAvgStrategy(partition="site", num_clients=3, vectorize=True)
    with pytest.raises(ConfigError, match="gradient_clip_val"):
        _fit(task, dm, strategy, tmp_path, epochs=1, gradient_clip_val=1.0)

    class Logging(ClassificationTask):
        def compute_loss(self, batch, stage):  # logs: not pure
            logits, loss = super().compute_loss(batch, stage)
            self.log("extra", loss)
            return logits, loss

    with pytest.raises(ConfigError, match="Logging.compute_loss is not declared"):
        check_vectorizable(Logging(model=MODELS["transformer"], data_spec=dm.spec))
    assert JointTask.__dict__.get("pure_compute_loss") is None  # JointTask logs in compute_loss
    task = ClassificationTask(
        model=MODELS["transformer"],
        data_spec=dm.spec,
        optimizer=lambda params: torch.optim.LBFGS(params),
    )
    strategy = FedAvgStrategy(partition="site", num_clients=3, vectorize=True)
    with pytest.raises(ConfigError, match="LBFGS is not known to be element-wise"):
        _fit(task, dm, strategy, tmp_path, epochs=1)
