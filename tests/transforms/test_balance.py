import numpy as np
import pytest
import torch

from lbp_motion.datamodules.tug import TUGDataModule
from lbp_motion.errors import ConfigError
from lbp_motion.transforms.balance import balance_sequences


def _toy(seed=0):
    rng = np.random.default_rng(seed)
    y = np.array([0] * 20 + [1] * 8 + [2] * 5)
    x = (rng.normal(size=(len(y), 6, 3)) + y[:, None, None] * 3).astype(np.float32)
    mask = np.ones((len(y), 6), bool)
    mask[::4, 4:] = False  # some padded tails
    x[~mask] = 0
    aux = rng.integers(0, 9, len(y))
    return x, mask, y, aux


@pytest.mark.parametrize("method", ["smote", "kmeans_smote"])
def test_oversampling_equalises_classes_and_keeps_originals(method):
    x, mask, y, aux = _toy()
    res = balance_sequences(x, mask, y, aux, method=method, seed=0)
    counts = np.bincount(res.y)
    assert counts.min() >= 20 and counts.max() - counts.min() <= 1
    assert res.x.shape[1:] == (6, 3) and res.mask.shape[1:] == (6,)
    np.testing.assert_array_equal(res.x[: len(y)], x)  # real samples untouched, first
    assert not res.synthetic[: len(y)].any() and res.synthetic[len(y) :].all()
    # a synthetic sample is a blend of its class: inside the class's value range
    for cls in (1, 2):
        real = x[(y == cls)][mask[y == cls]]
        new = res.x[res.synthetic & (res.y == cls)][res.mask[res.synthetic & (res.y == cls)]]
        assert new.min() >= real.min() - 1e-5 and new.max() <= real.max() + 1e-5
    # padded frames stay zero, and the aux label comes from the nearest real sample of the class
    assert np.all(res.x[~res.mask] == 0)
    assert np.all(y[res.source] == res.y)
    np.testing.assert_array_equal(res.aux, aux[res.source])
    src = res.source[res.synthetic][0]

    def flat(a, m):
        return np.concatenate([(a * m[..., None]).ravel(), m.astype(np.float32)])

    d_src = np.linalg.norm(
        flat(res.x[res.synthetic][0], res.mask[res.synthetic][0]) - flat(x[src], mask[src])
    )
    others = [
        np.linalg.norm(
            flat(res.x[res.synthetic][0], res.mask[res.synthetic][0]) - flat(x[i], mask[i])
        )
        for i in np.flatnonzero(y == y[src])
    ]
    assert d_src == pytest.approx(min(others))


def test_undersampling_keeps_real_samples_only():
    x, mask, y, aux = _toy()
    res = balance_sequences(x, mask, y, aux, method="undersample", seed=0)
    assert np.bincount(res.y).tolist() == [5, 5, 5]
    np.testing.assert_array_equal(res.x, x[res.source])
    np.testing.assert_array_equal(res.aux, aux[res.source])


def test_bad_method_and_tiny_class():
    x, mask, y, _ = _toy()
    with pytest.raises(ConfigError, match="balance='adasyn'"):
        balance_sequences(x, mask, y, method="adasyn")
    y1 = y.copy()
    y1[-5:-1] = 0  # class 2 keeps one sample
    with pytest.raises(ConfigError, match="at least 2 training samples in every class"):
        balance_sequences(x, mask, y1, method="smote")


def test_tug_balancing_touches_the_training_split_only(tiny_tug):
    plain = TUGDataModule(str(tiny_tug), stride=15)
    plain.setup("fit")
    bal = TUGDataModule(str(tiny_tug), stride=15, balance="smote")
    bal.setup("fit")
    counts = torch.bincount(bal.train_labels(), minlength=3)
    assert counts.min() == counts.max() == torch.bincount(plain.train_labels()).max()
    assert bal.num_real_train_samples == len(plain._datasets["train"])
    for split in ("val", "test"):
        np.testing.assert_array_equal(bal._datasets[split].index, plain._datasets[split].index)
    batch = next(iter(bal.train_dataloader()))
    assert batch["x"].shape[1:] == (30, 51) and batch["mask"].dtype == torch.bool
    synthetic = batch["recording"] == -1
    assert (batch["start"][synthetic] == -1).all()
