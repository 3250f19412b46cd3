"""Balancing of the training split (imbalanced-learn), shared by every DataModule.

Only the training split is ever resampled; validation and test data stay as they are.

How a sequence is resampled. Each sample is a sequence ``x`` (T, F) with a frame mask
(T,). The sampler sees one flat row per sample: the masked features ``x * mask``
followed by the mask itself as 0/1, i.e. T * F + T numbers. SMOTE and k-means SMOTE
create a synthetic row by interpolating between a sample and one of its k nearest
neighbours of the same class, so a synthetic sequence is a frame-by-frame blend of two
real sequences of that class; its mask is the blended mask thresholded at 0.5. At each
frame the synthetic features are the blend of the real frames only (the blended masked
features divided by the blended mask), so padding never pulls values towards zero;
features are zero where the mask is off. Random under-sampling keeps a random subset
of the majority classes unchanged.

The auxiliary label (e.g. the exercise type of an EmoPain sample) of a kept sample is
its own; a synthetic sample takes the auxiliary label of its nearest real sample of the
same class (Euclidean distance in the flat space). Synthetic samples have no recording:
their ``recording`` and ``start`` are -1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from lbp_motion.errors import ConfigError

BalanceMethod = Literal["none", "smote", "kmeans_smote", "undersample"]
METHODS = ("none", "smote", "kmeans_smote", "undersample")


@dataclass
class BalancedSet:
    """Resampled training samples; ``source`` is the index of the real sample each row
    is (kept samples) or is nearest to (synthetic samples); ``synthetic`` marks the new
    rows."""

    x: np.ndarray  # (N, T, F) float32
    mask: np.ndarray  # (N, T) bool
    y: np.ndarray  # (N,) int64
    aux: np.ndarray | None  # (N,) int64
    source: np.ndarray  # (N,) int64
    synthetic: np.ndarray  # (N,) bool


def _sampler(method: str, seed: int, k_neighbors: int, min_count: int):
    from imblearn.over_sampling import SMOTE, KMeansSMOTE
    from imblearn.under_sampling import RandomUnderSampler

    if method == "undersample":
        return RandomUnderSampler(random_state=seed)
    if min_count < 2:
        raise ConfigError(
            f"data: balance={method!r} needs at least 2 training samples in every class; the smallest class has {min_count}"
        )
    k = min(k_neighbors, min_count - 1)
    if method == "smote":
        return SMOTE(random_state=seed, k_neighbors=k)
    from sklearn.cluster import KMeans

    # at most as many clusters as the smallest class can fill with k + 1 samples each
    clusters = max(1, min(8, min_count // (k + 1)))
    return KMeansSMOTE(
        random_state=seed,
        k_neighbors=k,
        cluster_balance_threshold=0.0,
        kmeans_estimator=KMeans(n_clusters=clusters, n_init=10, random_state=seed),
    )


def balance_sequences(
    x: np.ndarray,
    mask: np.ndarray,
    y: np.ndarray,
    aux: np.ndarray | None = None,
    *,
    method: str = "smote",
    seed: int = 0,
    k_neighbors: int = 5,
) -> BalancedSet:
    """Resample training sequences so that every class has as many samples as the
    largest (over-sampling) or the smallest (under-sampling) class.

    Args:
        x: (N, T, F) features; mask: (N, T) bool real frames; y: (N,) class indices;
        aux: (N,) auxiliary labels or None.
        method: ``none``, ``smote``, ``kmeans_smote`` or ``undersample``.
    """
    if method not in METHODS:
        raise ConfigError(f"data: balance={method!r}; expected one of {METHODS}")
    n, t, f = x.shape
    y = np.asarray(y, dtype=np.int64)
    if method == "none" or n == 0:
        return BalancedSet(x, mask, y, aux, np.arange(n), np.zeros(n, bool))
    counts = np.bincount(y)
    present = counts[counts > 0]
    if len(present) < 2:
        raise ConfigError(
            f"data: balance={method!r} needs at least two classes in the training split"
        )
    flat = np.concatenate(
        [(x * mask[..., None]).reshape(n, t * f), mask.astype(np.float32)], axis=1
    )
    sampler = _sampler(method, seed, k_neighbors, int(present.min()))
    try:
        flat_res, y_res = sampler.fit_resample(flat, y)
    except RuntimeError as err:  # k-means SMOTE finds no usable cluster on tiny data
        raise ConfigError(
            f"data: balance={method!r} failed on the training split ({err}); try 'smote'"
        ) from None
    y_res = np.asarray(y_res, dtype=np.int64)
    if method == "undersample":
        source = np.asarray(sampler.sample_indices_, dtype=np.int64)
        synthetic = np.zeros(len(source), bool)
    else:  # imbalanced-learn keeps the originals first, in order, then appends new rows
        synthetic = np.arange(len(y_res)) >= n
        source = np.arange(len(y_res))
        source[synthetic] = _nearest_real(flat, y, flat_res[synthetic], y_res[synthetic])
    # a blended frame is the weighted mean of the REAL frames it was blended from:
    # divide the blended masked features by the blended mask
    weight = flat_res[:, t * f :]
    x_res = flat_res[:, : t * f].reshape(-1, t, f) / np.maximum(weight, 1e-12)[..., None]
    x_res = x_res.astype(np.float32)
    mask_res = weight > 0.5
    x_res[~mask_res] = 0.0
    aux_res = None if aux is None else np.asarray(aux)[source]
    return BalancedSet(x_res, mask_res, y_res, aux_res, source, synthetic)


def _nearest_real(
    flat: np.ndarray, y: np.ndarray, new: np.ndarray, y_new: np.ndarray
) -> np.ndarray:
    """Index of the nearest real sample of the same class for each new row."""
    from sklearn.neighbors import NearestNeighbors

    out = np.empty(len(new), dtype=np.int64)
    for cls in np.unique(y_new):
        real = np.flatnonzero(y == cls)
        rows = np.flatnonzero(y_new == cls)
        nn = NearestNeighbors(n_neighbors=1).fit(flat[real])
        out[rows] = real[nn.kneighbors(new[rows], return_distance=False)[:, 0]]
    return out


class SampleDataset:
    """A map-style dataset over materialised samples: a dict of equally long tensors
    (``x``, ``mask``, ``y``, optional ``aux``, ``recording``, ``start``, ...); item i is
    the dict of their i-th rows, the same batch format as every lbp_motion dataset."""

    def __init__(self, fields: dict) -> None:
        lengths = {len(v) for v in fields.values()}
        if len(lengths) != 1:
            raise ValueError(
                f"fields of unequal length: { {k: len(v) for k, v in fields.items()} }"
            )
        self.fields = fields

    def __len__(self) -> int:
        return len(next(iter(self.fields.values())))

    def __getitem__(self, i: int) -> dict:
        return {k: v[i] for k, v in self.fields.items()}

    def window_labels(self) -> np.ndarray:
        return self.fields["y"].numpy()


def balance_dataset(dataset, method: str, seed: int = 0, k_neighbors: int = 5) -> SampleDataset:
    """Materialise a dataset of batch dicts, balance it with :func:`balance_sequences`
    and return it as a :class:`SampleDataset`. Fields other than ``x``, ``mask``, ``y``
    and ``aux`` are copied from each row's source sample; ``recording`` and ``start``
    are -1 for synthetic rows."""
    import torch

    items = [dataset[i] for i in range(len(dataset))]
    if not items:
        raise ConfigError("data: the training split is empty; nothing to balance")
    stacked = {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in items[0]}
    aux = stacked["aux"].numpy() if "aux" in stacked else None
    res = balance_sequences(
        stacked["x"].numpy(),
        stacked["mask"].numpy(),
        stacked["y"].numpy(),
        aux,
        method=method,
        seed=seed,
        k_neighbors=k_neighbors,
    )
    source = torch.from_numpy(res.source)
    synthetic = torch.from_numpy(res.synthetic)
    fields = {k: v[source] for k, v in stacked.items() if k not in ("x", "mask", "y", "aux")}
    for key in ("recording", "start"):
        if key in fields:
            fields[key] = torch.where(synthetic, torch.full_like(fields[key], -1), fields[key])
    fields.update(
        x=torch.from_numpy(res.x), mask=torch.from_numpy(res.mask), y=torch.from_numpy(res.y)
    )
    if res.aux is not None:
        fields["aux"] = torch.from_numpy(np.asarray(res.aux, dtype=np.int64))
    return SampleDataset(fields)
