"""Results per clinic (lbp_motion.evaluation.sites): each site's held-out windows and a
model's metrics on them."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from torch import nn

from lbp_motion.datamodules.tug import TUGDataModule
from lbp_motion.datasets.format import read_labels
from lbp_motion.evaluation.sites import evaluate_by_site, write_site_table
from lbp_motion.tasks import ClassificationTask
from tests.conftest import TINY_TUG


@pytest.fixture(scope="module")
def sited(tmp_path_factory):
    from lbp_motion.datasets.synthetic import generate_tug_dataset

    root = generate_tug_dataset(tmp_path_factory.mktemp("sites"), **TINY_TUG["sites"])
    dm = TUGDataModule(str(root), stride=15, batch_size=16, test_fraction=0.5)
    dm.setup("fit")
    return root, dm


def test_each_sites_test_windows_are_the_test_windows_of_its_recordings(sited):
    root, dm = sited
    site_of = {row.subject: row.site for row in read_labels(root)}
    by_site = dm.split_by_site("test")
    test = dm._datasets["test"]
    assert list(by_site) == sorted(by_site) and len(by_site) >= 2
    seen = []
    for site, subset in by_site.items():
        for i in subset.indices:
            recording = int(test.index[i, 0])
            assert site_of[dm.recording_subjects[recording]] == site
        seen += subset.indices
    assert sorted(seen) == list(range(len(test)))  # every test window once
    assert TUGDataModule(str(root)).split_by_site("test")  # sets itself up when asked


class _Always(nn.Module):
    """Logits that always choose class ``k``."""

    def __init__(self, in_features, num_classes, k=0):
        super().__init__()
        self.bias = nn.Parameter(torch.full((num_classes,), -5.0))
        with torch.no_grad():
            self.bias[k] = 5.0

    def forward(self, x, mask=None):
        return self.bias.expand(len(x), -1)


def test_a_model_that_always_answers_one_class_scores_that_class_share_of_each_site(
    sited, tmp_path
):
    _, dm = sited
    task = ClassificationTask(model=_Always, data_spec=dm.spec)
    metrics, rows = evaluate_by_site(task, dm.split_by_site("test"), dm.classes, batch_size=7)
    test = dm._datasets["test"]
    labels = test.window_labels()
    for row in rows:
        indices = dm.split_by_site("test")[row["site"]].indices
        share = float(np.mean(labels[indices] == 0))
        assert metrics[f"test/site/{row['site']}/accuracy"] == pytest.approx(share)
        assert row["accuracy"] == pytest.approx(share, abs=1e-6)
        assert row["windows"] == len(indices) and row["model"] == "global"
        assert metrics[f"test/site/{row['site']}/mcc"] == 0.0  # one answer: no correlation
    path = write_site_table(tmp_path, rows)
    assert [r["site"] for r in csv.DictReader(open(path))] == [r["site"] for r in rows]


def test_no_sites_no_results(tiny_tug):
    dm = TUGDataModule(str(tiny_tug))  # labels.csv without a site column
    assert dm.split_by_site("test") == {}
