"""Differential privacy inside the in-process FedAvg strategy: each client's own Poisson
sampling, noise and accountant; per-round epsilon in rounds.csv; metrics.json."""

import csv
import json
import math

import lightning.pytorch as pl
import pytest
import torch

from lbp_motion.trust import load_checkpoint

pytest.importorskip("opacus")

from opacus.accountants import RDPAccountant  # noqa: E402

from lbp_motion.datamodules.tug import TUGDataModule
from lbp_motion.errors import ConfigError  # noqa: E402
from lbp_motion.federated import FedAvgStrategy  # noqa: E402
from lbp_motion.models import TransformerClassifier  # noqa: E402
from lbp_motion.privacy import DifferentialPrivacy  # noqa: E402
from lbp_motion.tasks import ClassificationTask  # noqa: E402
from tests.conftest import TINY_TRAINER, TINY_TRANSFORMER, TINY_TUG  # noqa: E402

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sited_tug(tmp_path_factory):
    from lbp_motion.datasets.synthetic import generate_tug_dataset

    return generate_tug_dataset(tmp_path_factory.mktemp("sited_dp"), **TINY_TUG["sites"])


def _fit(root, tmp_path, dp, strategy, rounds=2):
    pl.seed_everything(0)
    dm = TUGDataModule(str(root), stride=15, batch_size=16)
    task = ClassificationTask(
        model=lambda f, c: TransformerClassifier(f, c, **TINY_TRANSFORMER, dropout=0.0),
        data_spec=dm.spec,
    )
    trainer = pl.Trainer(
        **TINY_TRAINER,
        max_epochs=rounds,
        strategy=strategy,
        enable_checkpointing=False,
        limit_val_batches=0,
        default_root_dir=tmp_path,
        callbacks=[dp],
    )
    trainer.fit(task, datamodule=dm)
    return dm, trainer


def test_each_client_accounts_for_its_own_sampling_rate_and_steps(sited_tug, tmp_path):
    dp = DifferentialPrivacy(noise_multiplier=1.2, max_grad_norm=1.0, delta=1e-5)
    strategy = FedAvgStrategy(partition="site", num_clients=3, local_epochs=2)
    _, trainer = _fit(sited_tug, tmp_path, dp, strategy, rounds=2)
    summary = dp.run_summary()
    epsilons = []
    for k, n_k in enumerate(strategy.num_examples):
        q, steps = 16 / n_k, 2 * 2 * math.ceil(n_k / 16)  # rounds x E x batches per local epoch
        expected = RDPAccountant()
        for _ in range(steps):
            expected.step(noise_multiplier=1.2, sample_rate=q)
        assert summary[f"dp/client_{k}/steps"] == steps
        assert summary[f"dp/client_{k}/sample_rate"] == pytest.approx(q)
        assert summary[f"dp/client_{k}/epsilon"] == pytest.approx(
            expected.get_epsilon(delta=1e-5), rel=1e-9
        )
        epsilons.append(summary[f"dp/client_{k}/epsilon"])
    assert len(set(strategy.num_examples)) == 3 and len(set(epsilons)) == 3  # separate ledgers
    assert summary["dp/epsilon"] == max(epsilons)
    # rounds.csv's history: every client's epsilon after each round, and the largest
    first, last = strategy.history
    assert 0 < first["dp/epsilon"] < last["dp/epsilon"] == pytest.approx(max(epsilons))
    assert all(first[f"client_{k}/dp_epsilon"] < last[f"client_{k}/dp_epsilon"] for k in range(3))


def test_dp_refuses_fedprox(sited_tug, tmp_path):
    with pytest.raises(ConfigError, match="FedProx"):
        _fit(
            sited_tug,
            tmp_path,
            DifferentialPrivacy(noise_multiplier=1.0),
            FedAvgStrategy(partition="site", mu=0.1),
        )


def test_lbp_fit_fedavg_dp_config_reports_epsilon_per_round_and_in_metrics_json(sited_tug, run_lbp):
    run = run_lbp(
        "fit",
        "--config",
        "experiments/tug_fl/fedavg_dp.yaml",
        "--data.root",
        str(sited_tug),
        "--test_after_fit",
        "false",
    )
    with open(run / "rounds.csv") as fh:
        rounds = list(csv.DictReader(fh))
    assert [int(r["round"]) for r in rounds] == [0, 1]
    per_round = [float(r["dp/epsilon"]) for r in rounds]
    assert 0 < per_round[0] < per_round[1]
    for r in rounds:
        assert float(r["dp/epsilon"]) == pytest.approx(
            max(float(r[f"client_{k}/dp_epsilon"]) for k in range(3))
        )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dp/epsilon"] == pytest.approx(per_round[-1])
    assert (
        metrics["dp/epsilon"] <= metrics["dp/target_epsilon"] == 8.0
    )  # calibrated per client for 2 rounds x E = 2
    assert metrics["dp/unit"] == "subject"


def test_resumed_dp_run_keeps_counting_privacy(sited_tug, tmp_path):
    from lbp_motion.cli import main
    from tests.conftest import TINY_ARGS

    fixed_noise = (
        tmp_path / "noise.yaml"
    )  # target_epsilon would calibrate for each run's max_epochs
    fixed_noise.write_text(
        json.dumps(
            {
                "trainer": {
                    "callbacks": [
                        {
                            "class_path": "lbp_motion.privacy.DifferentialPrivacy",
                            "init_args": {
                                "noise_multiplier": 1.0,
                                "target_epsilon": None,
                                "unit": "subject",
                                "sample_rate": 0.5,
                                "max_windows_per_subject": 8,
                            },
                        }
                    ]
                }
            }
        )
    )
    base = [
        "--config",
        "experiments/tug_fl/fedavg_dp.yaml",
        "--config",
        str(fixed_noise),
        "--data.root",
        str(sited_tug),
        *TINY_ARGS,
        "--model.model.init_args.dropout",
        "0.1",
        "--test_after_fit",
        "false",
    ]
    assert (
        main(["fit", *base, "--trainer.max_epochs", "3", "--run.out_dir", str(tmp_path / "full")])
        == 0
    )
    assert (
        main(["fit", *base, "--trainer.max_epochs", "2", "--run.out_dir", str(tmp_path / "half")])
        == 0
    )
    half = tmp_path / "half" / "tug-fedavg-dp" / "version_0" / "checkpoints" / "last.ckpt"
    assert (
        main(
            [
                "fit",
                *base,
                "--trainer.max_epochs",
                "3",
                "--run.out_dir",
                str(tmp_path / "half"),
                "--ckpt_path",
                str(half),
            ]
        )
        == 0
    )
    full = json.loads(
        (tmp_path / "full" / "tug-fedavg-dp" / "version_0" / "metrics.json").read_text()
    )
    resumed = json.loads(
        (tmp_path / "half" / "tug-fedavg-dp" / "version_1" / "metrics.json").read_text()
    )
    assert resumed["dp/steps"] == full["dp/steps"]
    assert resumed["dp/epsilon"] == pytest.approx(full["dp/epsilon"], rel=1e-9)
    a = load_checkpoint(
        tmp_path / "full" / "tug-fedavg-dp" / "version_0" / "checkpoints" / "last.ckpt"
    )
    b = load_checkpoint(
        tmp_path / "half" / "tug-fedavg-dp" / "version_1" / "checkpoints" / "last.ckpt"
    )
    for key, value in a["state_dict"].items():  # the same noise, the same batches
        torch.testing.assert_close(b["state_dict"][key], value, msg=key)
