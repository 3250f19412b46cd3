"""The synthetic EmoPain generator: its cache and label shares close to the dataset's."""

from __future__ import annotations

import os

import numpy as np
import pytest

from lbp_motion.datamodules.emopain import EmoPainDataModule
from lbp_motion.datasets.emopain import frame_label_shares, list_emopain_files, read_emopain
from lbp_motion.datasets.synthetic import ensure_synthetic_emopain, generate_emopain_dataset


def test_synthetic_cache(tmp_path, monkeypatch):
    settings = dict(
        num_train_patients=1,
        num_train_controls=1,
        num_val_patients=1,
        num_val_controls=1,
        frames_per_file=240,
    )
    first = ensure_synthetic_emopain(tmp_path / "cache", **settings)
    stamp = os.path.getmtime(first / "train" / "P001N.mat")
    assert ensure_synthetic_emopain(tmp_path / "cache", **settings) == first
    assert os.path.getmtime(first / "train" / "P001N.mat") == stamp
    assert ensure_synthetic_emopain(tmp_path / "cache", **{**settings, "seed": 1}) != first
    assert sorted(p.name for p in (first / "train").iterdir()) == [
        "C001D.mat",
        "C001N.mat",
        "P001D.mat",
        "P001N.mat",
    ]
    assert sorted(p.name for p in (first / "validation").iterdir()) == [
        "C002D.mat",
        "C002N.mat",
        "P002D.mat",
        "P002N.mat",
    ]
    monkeypatch.setenv("LBP_CACHE", str(tmp_path / "env"))
    dm = EmoPainDataModule(task="protective", synthetic=settings)
    assert dm.resolve_root().parent == tmp_path / "env" / "synthetic"
    assert read_emopain(first / "train" / "P001N.mat").num_frames == 240
    with pytest.raises(TypeError):
        ensure_synthetic_emopain(tmp_path / "cache", frames=10)


def test_synthetic_label_shares_roughly_match_spec(tmp_path):
    """Default participants (train 10 P + 6 C, validation 4 P + 3 C), 30 s per file."""
    root = generate_emopain_dataset(tmp_path / "ds", frames_per_file=1800, seed=0)
    spec = {
        "train": {"no_pain": 0.2402, "low": 0.1132, "high": 0.0853, "protective": 0.1870},
        "validation": {"no_pain": 0.8378, "low": 0.1355, "high": 0.0267, "protective": 0.0677},
    }
    shares = {}
    for split in ("train", "validation"):
        recs = [read_emopain(p) for p in list_emopain_files(root / split)]
        assert len(recs) == (32 if split == "train" else 14)
        shares[split] = frame_label_shares(recs)
        print(
            split,
            "%",
            {k: round(100 * v, 2) for k, v in shares[split].items()},
            "SPEC %",
            {k: round(100 * v, 2) for k, v in spec[split].items()},
        )
        for key, target in spec[split].items():
            assert abs(shares[split][key] - target) < 0.06, (split, key, shares[split][key], target)
        exercises = np.bincount(np.concatenate([r.exercise for r in recs]), minlength=9)
        assert (exercises > 0).all()  # every exercise type, 'other' included
    assert abs(shares["train"]["unlabelled"] - 0.56) < 0.06
    assert shares["validation"]["protective"] < shares["train"]["protective"]
    rec = read_emopain(root / "train" / "P001N.mat")
    types = rec.protective_types
    assert (types[rec.protective == 0] == 0).all() and (
        types[rec.protective == 1].sum(1) >= 1
    ).all()
    controls = [
        read_emopain(p) for p in list_emopain_files(root / "train") if p.name.startswith("C")
    ]
    assert all(set(np.unique(r.pain)) <= {-1, 0} for r in controls)
    feet = rec.coords[:, [3, 6], 1]  # Y up, metres: ankles near the floor, head top above them
    assert 0.0 < feet.min() and feet.max() < 0.8 and np.median(rec.coords[:, 21, 1]) > 1.4
