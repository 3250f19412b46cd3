"""Baselines fitted on a fold's training windows, predicting its test windows.

* ``majority``: every test window gets the most frequent class of the training
  windows (ties: the first class in ``data.classes`` order), probability 1. It needs
  the labels only.
* ``window_stats``: a logistic regression on simple statistics of each window: for
  every frame channel of ``x`` (TUG: x', y' and the visibility flag of every joint,
  after the DataModule's normalisation, for each frame stream; not the
  ``recording_stats`` stream, a summary of the whole recording whose simple
  counterpart is the ``recording_stats`` baseline) the mean, the standard deviation (population,
  ddof 0) and the mean absolute frame-to-frame difference, over the window's real
  frames only (``mask``; the difference over pairs of consecutive real frames).
  Features are standardised on the training windows (``StandardScaler``), then
  ``LogisticRegression(max_iter=1000)`` (L2, C=1, lbfgs) is fitted **without class
  weights**: it is the plain reference a model must beat, and the majority baseline
  already shows what the class frequencies alone give.
* ``recording_stats``: the same logistic regression on one sample per recording: the
  mean of the window statistics over all windows of the recording, trained on the
  training recordings; each test window gets its recording's probabilities. It is the
  simple reference for a label of the person (severity, TUG time): one answer per
  recording from its whole movement. Its window columns are its recording answer
  counted once per window; compare it at recording level. It needs one label per
  recording (:func:`labels_per_recording`); ``lbp cv`` skips it otherwise (EmoPain's
  segment labels).

All train on the *real* training windows (``real_train_dataset()``: before any
``data.balance`` resampling) of the same DataModule and split file as the model, and
predict the DataModule's ``test`` windows: the model's test windows. For a model whose
samples are recordings (bags of windows, ``unit: recording``) they train on and
predict every window of the same recordings (:func:`window_dataset`), and are compared
with it at recording level.

Rows are in the form of ``predictions.csv``: ``recording``, ``start``, ``predicted``,
``label``, ``p_<class>``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

#: Baseline names, in the order they are reported.
BASELINES = ("window_stats", "recording_stats", "majority")
#: The baselines that read window features (they need window items and the data's classes).
FEATURE_BASELINES = ("window_stats", "recording_stats")
#: The baselines that answer once per recording: compared with a model at recording level only.
RECORDING_BASELINES = ("recording_stats",)
#: Readable names (tables).
TITLES = {
    "window_stats": "window statistics (logistic regression)",
    "recording_stats": "recording statistics (logistic regression)",
    "majority": "majority class",
}

MAX_ITER = 1000


def compared_metrics(name: str, compared: Sequence[str]) -> list[str]:
    """Of the metrics ``compared`` (model - baseline), those compared with baseline
    ``name``: the recording-level ones for a baseline of :data:`RECORDING_BASELINES`."""
    if name in RECORDING_BASELINES:
        return [m for m in compared if m.startswith("recording_")]
    return list(compared)


def window_features(x: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """(N, T, F) windows and (N, T) real-frame masks -> (N, 3F) features, in float64:
    :func:`~lbp_motion.models.statistics.window_statistics` (per channel mean,
    standard deviation and mean absolute frame-to-frame difference over the real
    frames)."""
    from lbp_motion.models.statistics import window_statistics

    return window_statistics(x.double(), mask).numpy()


def window_dataset(dataset: Any) -> Any:
    """The windows behind ``dataset``: a bag dataset's (one item per recording, its
    windows as ``dataset.windows``, e.g. :class:`~lbp_motion.datamodules.tug.RecordingBags`),
    else the dataset itself."""
    return getattr(dataset, "windows", dataset)


def has_windows(dataset: Any) -> bool:
    """Whether the dataset's items are windows: dicts with ``x`` (T, F) and ``mask`` (T,)."""
    if len(dataset) == 0:
        return False
    item = dataset[0]
    if not isinstance(item, dict) or "x" not in item or "mask" not in item:
        return False
    x, mask = item["x"], item["mask"]
    return getattr(x, "ndim", 0) == 2 and getattr(mask, "ndim", 0) == 1 and len(mask) == len(x)


def labels_per_recording(dataset: Any) -> bool:
    """Whether the windows of each recording in ``dataset`` share one label (TUG:
    labels.csv labels recordings), read from ``window_labels()`` and the recording
    column of ``index``; False when they do not (EmoPain labels segments) or the
    dataset cannot tell."""
    index = getattr(dataset, "index", None)
    if index is None or not hasattr(dataset, "window_labels") or len(index) == 0:
        return False
    pairs = np.unique(
        np.stack([np.asarray(index)[:, 0], np.asarray(dataset.window_labels())], axis=1), axis=0
    )
    return len(pairs) == len(np.unique(pairs[:, 0]))


def collect(dataset: Any, *, features: bool, batch_size: int = 512) -> dict[str, np.ndarray]:
    """Labels (``y``), ``recording`` ids and ``start`` frames of every item in order,
    plus their window ``features`` when asked."""
    out: dict[str, list] = {"y": [], "recording": [], "start": [], "features": []}
    # the frame streams only (not the recording_stats stream: see the module docstring)
    width = getattr(window_dataset(dataset), "frame_features", None)
    for batch in torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False):
        out["y"].append(batch["y"].reshape(-1))
        out["recording"].append(batch["recording"].reshape(-1))
        out["start"].append(batch["start"].reshape(-1))
        if features:
            x = batch["x"] if width is None else batch["x"][..., :width]
            out["features"].append(torch.from_numpy(window_features(x, batch["mask"])))
    return {k: torch.cat(v).numpy() for k, v in out.items() if v}


def majority_class(train_labels: Sequence[int] | np.ndarray, num_classes: int) -> int:
    """The most frequent training label (ties: the lowest class index)."""
    labels = np.asarray(train_labels, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("majority baseline: no training labels")
    return int(np.bincount(labels, minlength=num_classes).argmax())


def majority_probs(
    train_labels: Sequence[int] | np.ndarray, n: int, num_classes: int
) -> np.ndarray:
    probs = np.zeros((n, num_classes))
    probs[:, majority_class(train_labels, num_classes)] = 1.0
    return probs


def window_stats_probs(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    num_classes: int,
) -> np.ndarray:
    """Class probabilities (N, C) of the standardised logistic regression (a class
    absent from training gets probability 0)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(train_labels)) < 2:
        raise ValueError("statistics baseline: the training samples have fewer than two classes")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(train_features, train_labels)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        log.warning(
            "statistics baseline: the logistic regression did not converge in %d iterations",
            MAX_ITER,
        )
    probs = np.zeros((len(test_features), num_classes))
    if len(test_features):
        probs[:, model.classes_] = model.predict_proba(test_features)
    return probs


def recording_means(
    features: np.ndarray, labels: np.ndarray, recording: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The recordings (sorted ids), the mean of their windows' ``features`` and their
    labels (a recording's windows share its label; the first window's is taken)."""
    ids, first, inverse = np.unique(recording, return_index=True, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(ids)).astype(float)
    means = np.zeros((len(ids), features.shape[1]))
    np.add.at(means, inverse, features)
    return ids, means / counts[:, None], np.asarray(labels)[first]


def recording_stats_probs(
    train: dict[str, np.ndarray], test: dict[str, np.ndarray], num_classes: int
) -> np.ndarray:
    """Class probabilities (N, C) of the test windows: the logistic regression of
    :func:`window_stats_probs` fitted on the training recordings' mean window
    statistics and applied to each test recording's, given to each of its windows.
    ``train`` and ``test``: :func:`collect` output with ``features``."""
    _, train_x, train_y = recording_means(train["features"], train["y"], train["recording"])
    ids, test_x, _ = recording_means(test["features"], test["y"], test["recording"])
    per_recording = window_stats_probs(train_x, train_y, test_x, num_classes)
    return per_recording[np.searchsorted(ids, test["recording"])]


def prediction_rows(
    names: Sequence[str],
    recording: np.ndarray,
    start: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
) -> list[dict[str, str]]:
    """Rows in the form of ``predictions.csv`` (probabilities with 6 decimals)."""
    return [
        {
            "recording": names[int(r)],
            "start": str(int(s)),
            "predicted": classes[int(p.argmax())],
            "label": classes[int(y)],
            **{f"p_{c}": f"{v:.6f}" for c, v in zip(classes, p)},
        }
        for r, s, y, p in zip(recording, start, labels, probs)
    ]


def fold_baselines(datamodule: Any, names: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    """Fit the baselines ``names`` on the set-up DataModule's real training windows and
    predict its test windows (of bags: their windows, :func:`window_dataset`); rows per
    baseline. ``window_stats`` and ``recording_stats`` need window items (see :func:`has_windows`)."""
    classes = list(datamodule.classes)
    train = window_dataset(datamodule.real_train_dataset())
    test = window_dataset(datamodule.test_dataloader().dataset)  # the public way to the test split
    stats = any(n in FEATURE_BASELINES for n in names)
    tested = collect(test, features=stats)
    trained = collect(train, features=True) if stats else {}
    out: dict[str, list[dict[str, str]]] = {}
    for name in names:
        if name == "majority":
            probs = majority_probs(train.window_labels(), len(tested["y"]), len(classes))
        elif name == "window_stats":
            probs = window_stats_probs(
                trained["features"], trained["y"], tested["features"], len(classes)
            )
        elif name == "recording_stats":
            probs = recording_stats_probs(trained, tested, len(classes))
        else:
            raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINES}")
        out[name] = prediction_rows(
            datamodule.recording_names,
            tested["recording"],
            tested["start"],
            tested["y"],
            probs,
            classes,
        )
    return out
