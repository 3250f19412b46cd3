"""Personalised models of a federation (lbp_motion.federated.personalise): each clinic's
local layers and fine-tuning, tested on the clinic's own held-out subjects."""

from __future__ import annotations

import copy
import csv

import lightning.pytorch as pl
import pytest
import torch

from lbp_motion.datamodules.tug import TUGDataModule
from lbp_motion.errors import ConfigError
from lbp_motion.federated import FedAvgStrategy
from lbp_motion.federated.personalise import (
    checkpoint_local_states,
    client_sites,
    personalised_results,
)
from lbp_motion.models import TransformerClassifier
from lbp_motion.tasks import ClassificationTask
from tests.conftest import ROOT, TINY_TRAINER, TINY_TUG, read_json

pytestmark = pytest.mark.e2e  # Trainer fits of the strategy


@pytest.fixture(scope="module")
def sited(tmp_path_factory):
    from lbp_motion.datasets.synthetic import generate_tug_dataset

    return generate_tug_dataset(tmp_path_factory.mktemp("personal"), **TINY_TUG["sites"])


def _model(f, c):  # one LayerNorm at least: FedBN keeps it local
    return TransformerClassifier(f, c, d_model=16, num_layers=1, num_heads=2, dropout=0.0)


def _fedbn_fit(root, tmp_path, **options):
    pl.seed_everything(0)
    dm = TUGDataModule(str(root), stride=15, batch_size=16, test_fraction=0.5)
    task = ClassificationTask(model=_model, data_spec=dm.spec, lr=3e-3)
    strategy = FedAvgStrategy(partition="site", num_clients=3, fedbn=True, **options)
    trainer = pl.Trainer(
        **TINY_TRAINER,
        max_epochs=2,
        strategy=strategy,
        default_root_dir=tmp_path,
        limit_val_batches=0,
        enable_checkpointing=False,
    )
    trainer.fit(task, datamodule=dm)
    return trainer, task, dm, strategy


def test_client_sites_are_the_clients_of_one_site():
    sites = {"a": "s1", "b": "s1", "c": "s2", "d": "s3"}
    assert client_sites([["a", "b"], ["c"], ["c", "d"], ["x"]], sites) == {0: "s1", 1: "s2"}


def test_each_clinic_is_tested_with_its_own_local_layers_and_the_global_model_is_untouched(
    sited, tmp_path
):
    trainer, task, dm, strategy = _fedbn_fit(sited, tmp_path)
    before = copy.deepcopy(task.state_dict())
    tests = dm.split_by_site("test")
    metrics, rows = personalised_results(strategy, task, dm, tests, dm.classes, "mean_prob")
    for key, value in task.state_dict().items():
        torch.testing.assert_close(value, before[key], msg=key)
    sites = client_sites(strategy.client_subjects, strategy.subject_sites)
    assert sorted(sites.values()) == ["site1", "site2", "site3"]
    correct, total = 0, 0
    for client, site in sites.items():
        if site not in tests:
            continue
        local = strategy.local_states[client]
        assert local and set(local) == set(strategy.local_keys)
        own = copy.deepcopy(task).cpu().eval()
        own.load_state_dict(local, strict=False)
        loader = torch.utils.data.DataLoader(tests[site], batch_size=5)
        with torch.no_grad():
            hits = [(own(b["x"], b["mask"]).argmax(1) == b["y"]) for b in loader]
        hits = torch.cat(hits)
        assert metrics[f"test/personalised/site/{site}/accuracy"] == pytest.approx(
            float(hits.float().mean()), abs=1e-6
        )
        correct, total = correct + int(hits.sum()), total + len(hits)
    # pooled: every held-out window answered by its own clinic's model
    assert metrics["test/personalised/accuracy"] == pytest.approx(correct / total, abs=1e-6)
    assert {r["model"] for r in rows} == {"personalised"} and len(rows) == len(tests)


def test_fine_tuning_changes_the_clinic_models_reproducibly_not_the_global_one(sited, tmp_path):
    trainer, task, dm, strategy = _fedbn_fit(sited, tmp_path, finetune_epochs=2)
    tests = dm.split_by_site("test")
    before = copy.deepcopy(task.state_dict())
    tuned, _ = personalised_results(strategy, task, dm, tests, dm.classes, "mean_prob")
    again, _ = personalised_results(strategy, task, dm, tests, dm.classes, "mean_prob")
    strategy.finetune_epochs = 0
    untuned, _ = personalised_results(strategy, task, dm, tests, dm.classes, "mean_prob")
    assert tuned == again
    assert tuned != untuned  # 2 epochs at lr 3e-3 move each clinic's answers
    for key, value in task.state_dict().items():
        torch.testing.assert_close(value, before[key], msg=key)


def test_the_local_layers_come_from_the_tested_checkpoint(sited, tmp_path):
    trainer, task, dm, strategy = _fedbn_fit(sited, tmp_path)
    path = tmp_path / "round.ckpt"
    checkpoint = trainer._checkpoint_connector.dump_checkpoint()  # what save_checkpoint writes,
    checkpoint.pop("hyper_parameters")  # less the model function this test built in Python
    torch.save(checkpoint, path)
    stored = checkpoint_local_states(strategy, path)
    assert sorted(stored) == sorted(strategy.local_states)
    for client, state in stored.items():
        for key, value in state.items():
            torch.testing.assert_close(value, strategy.local_states[client][key].cpu())


def test_bad_fine_tuning_options_are_one_line_errors():
    with pytest.raises(ConfigError, match="finetune_epochs=-1"):
        FedAvgStrategy(finetune_epochs=-1).validate_options()


def test_lbp_fit_and_lbp_test_write_global_and_personalised_results_per_site(
    sited, run_lbp, tmp_path
):
    config = str(ROOT / "experiments" / "tug_fl" / "finetune.yaml")
    run = run_lbp("fit", "--config", config, "--data.root", str(sited),
                  "--data.test_fraction", "0.5", "--trainer.strategy.init_args.finetune_epochs", "1")  # fmt: skip
    rows = list(csv.DictReader(open(run / "sites.csv")))
    sites = sorted({r["site"] for r in rows})
    assert {(r["site"], r["model"]) for r in rows} == {
        (s, m) for s in sites for m in ("global", "personalised")
    }
    metrics = read_json(run / "metrics.json")
    for row in rows:
        prefix = "test/site" if row["model"] == "global" else "test/personalised/site"
        assert float(row["accuracy"]) == pytest.approx(
            metrics[f"{prefix}/{row['site']}/accuracy"], abs=1e-5
        )
    windows = sum(int(r["windows"]) for r in rows if r["model"] == "global")
    weighted = sum(float(r["accuracy"]) * int(r["windows"]) for r in rows if r["model"] == "global")
    assert weighted / windows == pytest.approx(
        metrics["test/accuracy"], abs=1e-4
    )  # the same windows
    (run / "sites.csv").unlink()
    from lbp_motion.cli import main

    ckpt = metrics["best_checkpoint"]
    assert main(["test", "--ckpt_path", ckpt, "--run.out_dir", str(tmp_path / "tested")]) == 0
    tested = next((tmp_path / "tested").glob("*/version_*"))
    again = list(csv.DictReader(open(tested / "sites.csv")))
    assert [r for r in again if r["model"] == "global"] == [
        r for r in rows if r["model"] == "global"
    ]
