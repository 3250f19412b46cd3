"""Threshold selection for anomaly scores (PLAAN's anomaly detection).

Conventions: a higher score means more anomalous; label 1 is the anomaly (pain or
protective behaviour) and 0 is normal; a segment is predicted anomalous when
``score >= threshold``.

Rules (:func:`select_threshold`):

- ``percentile``: the ``q``-th percentile of the normal (label 0) scores, with numpy's
  linear interpolation; about ``100 - q`` % of normal segments score at or above it.
- ``f1``: the threshold maximising the F1 of ``score >= t`` (anomaly the positive
  class) over the candidates ``t`` = the unique scores; on a tie the smallest such
  threshold wins (the most sensitive of the equally good ones).
- ``youden``: the threshold maximising Youden's J = TPR - FPR over the finite ROC
  thresholds of :func:`sklearn.metrics.roc_curve` (``drop_intermediate=False``); on a
  tie the largest such threshold wins (the fewest false alarms of the equally good ones).

Plain numpy (and scikit-learn for the ROC); any array-like, including CPU tensors, works.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from lbp_motion.errors import ConfigError

RULES = ("percentile", "f1", "youden")


def _scores(scores, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=float).reshape(-1)
    if s.size == 0:
        raise ConfigError(f"threshold selection: {name} are empty")
    if not np.all(np.isfinite(s)):
        raise ConfigError(f"threshold selection: {name} contain NaN or infinite values")
    return s


def _scores_labels(scores, labels, rule: str) -> tuple[np.ndarray, np.ndarray]:
    s = _scores(scores)
    y = np.asarray(labels).reshape(-1)
    if y.shape != s.shape:
        raise ConfigError(f"threshold selection: {s.size} scores but {y.size} labels")
    if not np.all(np.isin(y, (0, 1))):
        raise ConfigError(
            f"threshold selection: labels must be 0 (normal) or 1 (anomalous), got {sorted(set(y.tolist()))}"
        )
    y = y.astype(int)
    if rule in ("f1", "youden") and np.unique(y).size < 2:
        only = "anomalous" if y[0] == 1 else "normal"
        raise ConfigError(
            f"threshold rule {rule!r} needs both normal (0) and anomalous (1) labels; all {y.size} are {only}"
        )
    return s, y


def percentile_threshold(normal_scores, q: float = 95.0) -> float:
    """The ``q``-th percentile (0..100, linear interpolation) of the normal scores."""
    if not 0.0 <= float(q) <= 100.0:
        raise ConfigError(f"threshold percentile q must be in [0, 100], got {q}")
    s = np.asarray(normal_scores, dtype=float).reshape(-1)
    if s.size == 0:
        raise ConfigError(
            "threshold rule 'percentile' needs normal (label 0) scores; there are none"
        )
    return float(np.percentile(_scores(s, "normal scores"), q))


def f1_optimal_threshold(scores, labels) -> float:
    """The unique score ``t`` maximising F1 of ``scores >= t``; ties -> the smallest ``t``."""
    s, y = _scores_labels(scores, labels, "f1")
    candidates = np.unique(s)  # ascending
    pred = s[None, :] >= candidates[:, None]  # (C, N)
    tp = (pred & (y == 1)).sum(axis=1)
    fp = (pred & (y == 0)).sum(axis=1)
    fn = (~pred & (y == 1)).sum(axis=1)
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(len(candidates)), where=denom > 0)
    return float(candidates[int(np.argmax(f1))])  # argmax: first (smallest) of the ties


def youden_threshold(scores, labels) -> float:
    """The finite ROC threshold maximising TPR - FPR; ties -> the largest threshold."""
    from sklearn.metrics import roc_curve

    s, y = _scores_labels(scores, labels, "youden")
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    finite = np.isfinite(thresholds) & (
        thresholds <= s.max()
    )  # drop sklearn's leading inf / max + 1
    j, t = (tpr - fpr)[finite], thresholds[finite]
    best = np.flatnonzero(j == j.max())
    return float(t[best].max())


def select_threshold(
    scores, labels, rule: Literal["percentile", "f1", "youden"], q: float = 95.0
) -> float:
    """The threshold chosen by ``rule`` (see the module docstring) on validation scores."""
    if rule not in RULES:
        raise ConfigError(f"unknown threshold rule {rule!r}; choose one of {', '.join(RULES)}")
    if rule == "percentile":
        s = np.asarray(scores, dtype=float).reshape(-1)
        y = np.asarray(labels).reshape(-1)
        if y.shape != s.shape:
            raise ConfigError(f"threshold selection: {s.size} scores but {y.size} labels")
        return percentile_threshold(s[y == 0], q)
    if rule == "f1":
        return f1_optimal_threshold(scores, labels)
    return youden_threshold(scores, labels)
