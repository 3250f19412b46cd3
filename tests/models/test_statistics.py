"""Window statistics: one implementation for the baselines and the model; the model
standardises like a StandardScaler fitted on its training windows and learns only its
head."""

import numpy as np
import pytest
import torch
from sklearn.preprocessing import StandardScaler

from lbp_motion.evaluation.baselines import window_features
from lbp_motion.models import WindowStatisticsClassifier, window_statistics


def test_statistics_of_the_real_frames_by_hand():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 3, generator=g)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 5:] = False
    out = window_statistics(x, mask)
    for i, n in ((0, 8), (1, 5)):
        real = x[i, :n].numpy()
        expected = np.concatenate(
            [real.mean(0), real.std(0), np.abs(np.diff(real, axis=0)).mean(0)]
        )
        np.testing.assert_allclose(out[i].numpy(), expected, rtol=1e-5, atol=1e-6)
    # the baselines' features are the same numbers, in float64
    np.testing.assert_allclose(window_features(x, mask), out.double().numpy(), rtol=1e-6)


def test_standardised_like_a_scaler_fitted_on_the_training_windows():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, 10, 4, generator=g) * torch.tensor([1.0, 5.0, 0.1, 2.0]) + 3.0
    model = WindowStatisticsClassifier(4, 3)
    model.train()
    model.features(x)  # one training pass: the running statistics of these windows
    model.eval()
    stats = window_statistics(x).numpy()
    expected = StandardScaler().fit_transform(stats)
    # BatchNorm keeps the unbiased variance (n - 1), the scaler the biased one (n), and
    # BatchNorm adds eps = 1e-5 to it (1 % here for the channels of least spread)
    np.testing.assert_allclose(
        model.features(x).detach().numpy(), expected * np.sqrt(399 / 400), rtol=0.02, atol=1e-3
    )


def test_only_the_head_learns():
    model = WindowStatisticsClassifier(51, 3)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.1.weight", "head.1.bias"}
    assert model.head[1].weight.shape == (3, 153)


def test_head_dropout_acts_in_training_only():
    x = torch.randn(64, 10, 4, generator=torch.Generator().manual_seed(3))
    model = WindowStatisticsClassifier(4, 2, dropout=0.5)
    model.features(x)  # running statistics, so that eval standardises
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    first = model(x)
    assert not torch.allclose(first, model(x))


def _fit_recording_stats(tiny_tug, tmp_path, *extra):
    from lbp_motion.cli import main
    from lbp_motion.evaluation.results import read_metrics
    from lbp_motion.trust import load_checkpoint

    args = [
        "fit",
        "--config",
        "experiments/tug/recording_stats.yaml",
        "--data.root",
        str(tiny_tug),
        "--data.stride",
        "15",
        "--trainer.max_epochs",
        "2",
        "--trainer.enable_progress_bar",
        "false",
        "--run.wandb",
        "disabled",
        "--run.out_dir",
        str(tmp_path),
        "--test_after_fit",
        "false",
        *extra,
    ]
    assert main(args) == 0
    run = tmp_path / "recording_stats" / "version_0"
    state = load_checkpoint(read_metrics(run)["best_checkpoint"])["state_dict"]
    return run, {k.rsplit(".", 1)[-1]: v for k, v in state.items() if "standardise" in k}


@pytest.mark.e2e
def test_the_recording_statistics_model_keeps_the_training_windows_statistics(tiny_tug, tmp_path):
    from lbp_motion.datamodules.tug import TUGDataModule

    _, plain = _fit_recording_stats(tiny_tug, tmp_path / "plain", "--run.name", "recording_stats")
    dm = TUGDataModule(root=str(tiny_tug), stride=15, unit="recording", max_windows=32)
    dm.setup("fit")
    bags = dm.real_train_dataset()
    assert len(bags) <= 8  # one batch of recordings an epoch: the running mean is exact
    items = [bags[k] for k in range(len(bags))]
    x = torch.cat([it["x"][it["window_mask"]] for it in items])
    mask = torch.cat([it["mask"][it["window_mask"]] for it in items])
    # the mean statistics of the windows the model was trained on (the bags' windows)
    expected = window_statistics(x, mask).mean(0)
    torch.testing.assert_close(plain["running_mean"], expected, atol=1e-4, rtol=1e-4)

    strategy = (
        '{"class_path": "lbp_motion.federated.FedAvgStrategy", '
        '"init_args": {"num_clients": 2, "partition": "iid", "seed": 0}}'
    )
    run, federated = _fit_recording_stats(
        tiny_tug, tmp_path / "fed", "--run.name", "recording_stats", "--trainer.strategy", strategy
    )
    assert (run / "rounds.csv").is_file()
    # the clients' statistics reach the global model (not the initial 0 / 1)
    assert federated["running_mean"].abs().sum() > 0
    assert not torch.allclose(federated["running_var"], torch.ones_like(federated["running_var"]))


def test_a_training_batch_of_one_window_uses_the_statistics_so_far():
    g = torch.Generator().manual_seed(2)
    model = WindowStatisticsClassifier(4, 2).train()
    model.features(torch.randn(50, 10, 4, generator=g))
    before = model.standardise.running_mean.clone(), model.standardise.running_var.clone()
    one = torch.randn(1, 10, 4, generator=g)
    out = model.features(one)
    assert torch.isfinite(out).all()
    assert torch.equal(model.standardise.running_mean, before[0])
    assert torch.equal(model.standardise.running_var, before[1])
    torch.testing.assert_close(out, model.eval().features(one))
