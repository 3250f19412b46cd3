"""Subject-bootstrap intervals of pooled metrics, and paired differences.

Windows of one subject are strongly correlated (and so are the recordings of one
subject), so the unit of resampling is the subject: a resample draws as many subjects
as there are, with replacement, and the metric is computed over the pooled rows of
the drawn subjects (a subject drawn twice counts twice). The interval is the
percentile interval of the ``n_boot`` resampled values (95%: the 2.5th and 97.5th
percentiles).

A paired difference (model - baseline) uses the same resampled subjects for both row
sets; a row set compared with itself gives exactly 0 with interval [0, 0].

Every metric here is a function of a confusion matrix, so each subject is reduced
once to its window-level and recording-level confusion matrices and a resample is a
weighted sum of those: thousands of resamples take milliseconds.

Rows are ``predictions.csv`` rows (``recording``, ``label``, ``p_<class>``; optional
``fold``): recordings are keyed by ``fold/recording`` as in :func:`lbp_motion.pipelines.cv.pooled_metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from lbp_motion.evaluation.metrics import (
    RecordingRule,
    aggregate_by_recording,
    check_recording_rule,
)

#: The metrics with intervals: window level, then recording level (the windows of a
#: recording combined by the task's recording rule, default the mean window
#: probability, argmax; the recording's label is its most frequent one).
METRICS = (
    "accuracy",
    "f1_macro",
    "mcc",
    "recording_accuracy",
    "recording_f1_macro",
    "recording_mcc",
)


def confusion_metrics(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro F1 and MCC of confusion matrices ``cm`` (..., C, C) (rows: true
    class, columns: predicted), with torchmetrics' conventions: macro F1 averages the
    classes that occur in the labels or the predictions; F1 of a class is 0 where it
    would divide by zero; MCC is 0 there with three or more classes, and with two
    classes it is 1 when every sample is right, -1 when every one is wrong, else
    torchmetrics' smoothed value (:func:`_binary_degenerate_mcc`)."""
    cm = np.asarray(cm, dtype=np.float64)
    n = cm.sum(axis=(-2, -1))
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    t, p = cm.sum(axis=-1), cm.sum(axis=-2)
    correct = tp.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = np.where(n > 0, correct / np.where(n > 0, n, 1), 0.0)
        present = (t + p) > 0
        f1 = np.where(present, 2 * tp / np.where(present, t + p, 1), 0.0)
        k = present.sum(axis=-1)
        f1_macro = np.where(k > 0, f1.sum(axis=-1) / np.where(k > 0, k, 1), 0.0)
        cov = correct * n - (t * p).sum(axis=-1)
        den = (n**2 - (p * p).sum(axis=-1)) * (n**2 - (t * t).sum(axis=-1))
        mcc = np.where(den > 0, cov / np.sqrt(np.where(den > 0, den, 1)), 0.0)
    if cm.shape[-1] == 2:
        mcc = np.where(den > 0, mcc, _binary_degenerate_mcc(cm))
        mcc = np.where((n > 0) & (correct == n), 1.0, np.where((n > 0) & (correct == 0), -1.0, mcc))
    return {"accuracy": accuracy, "f1_macro": f1_macro, "mcc": mcc}


def _binary_degenerate_mcc(cm: np.ndarray) -> np.ndarray:
    """torchmetrics' two-class MCC where the usual formula divides by zero (one class
    never predicted or never present): a value from an epsilon-smoothed formula, e.g.
    (tn - fn) / sqrt(fn tn (tn + fn)) when the positive class is never predicted."""
    tn, fp, fn, tp = cm[..., 0, 0], cm[..., 0, 1], cm[..., 1, 0], cm[..., 1, 1]
    eps = float(np.finfo(np.float32).eps)
    root = np.sqrt(eps)
    numerator = np.select(
        [
            (fn == 0) & (tn == 0),
            (fp == 0) & (tn == 0),
            (tp == 0) & (fn == 0),
            (tp == 0) & (fp == 0),
            tp == 0,
            tn == 0,
            (fp == 0) | (fn == 0),
        ],
        [
            root * (tp - fp),
            root * (tp - fn),
            root * (tn - fp),
            root * (tn - fn),
            tn - fp * fn,
            tp - fp * fn,
            tp * tn,
        ],
        default=0.0,
    )
    return numerator / np.sqrt(
        (tp + fp + eps) * (tp + fn + eps) * (tn + fp + eps) * (tn + fn + eps)
    )


def _probs_and_labels(
    rows: Sequence[Mapping[str, str]], classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    index = {c: i for i, c in enumerate(classes)}
    probs = np.array(
        [[float(r[f"p_{c}"]) for c in classes] for r in rows], dtype=np.float64
    ).reshape(len(rows), len(classes))
    labels = np.array([index[r["label"]] for r in rows], dtype=np.int64)
    return probs, labels


def _recording_key(row: Mapping[str, str]) -> str:
    return f"{row.get('fold', '')}/{row['recording']}"


def recording_predictions(
    rows: Sequence[Mapping[str, str]], classes: Sequence[str], rule: RecordingRule = "mean_prob"
) -> dict[str, tuple[int, int]]:
    """``fold/recording`` -> (label, predicted) at recording level: the argmax of the
    window probabilities combined by ``rule``; the label is the most frequent window
    label (ties: the first class), by :func:`lbp_motion.evaluation.metrics.aggregate_by_recording`."""
    probs, labels = _probs_and_labels(rows, classes)
    keys = [_recording_key(r) for r in rows]
    names = sorted(set(keys))
    pos = {k: i for i, k in enumerate(names)}
    idx = torch.tensor([pos[k] for k in keys], dtype=torch.long)
    ids, scores, rec_labels = aggregate_by_recording(
        idx,
        torch.from_numpy(probs).reshape(len(rows), len(classes)),
        torch.from_numpy(labels),
        rule,
    )
    pred = scores.argmax(dim=1)
    return {names[int(i)]: (int(y), int(p)) for i, y, p in zip(ids, rec_labels, pred)}


def subject_confusions(
    rows: Sequence[Mapping[str, str]],
    classes: Sequence[str],
    subject_of: Mapping[str, str],
    subjects: Sequence[str],
    rule: RecordingRule = "mean_prob",
) -> tuple[np.ndarray, np.ndarray]:
    """Window-level and recording-level confusion matrices of each subject,
    (S, C, C) each, in the order of ``subjects``; ``subject_of`` maps a recording name
    to its subject; ``rule``: how a recording's windows make its answer."""
    c, pos = len(classes), {s: i for i, s in enumerate(subjects)}

    def subject_index(recording: str) -> int:
        subject = subject_of.get(recording)
        if subject is None:
            raise ValueError(
                f"recording {recording!r} has no subject (not in the data's recordings)"
            )
        if subject not in pos:
            raise ValueError(
                f"recording {recording!r}: subject {subject!r} is not among the resampled subjects"
            )
        return pos[subject]

    windows = np.zeros((len(subjects), c, c))
    if rows:
        probs, labels = _probs_and_labels(rows, classes)
        sub = np.array([subject_index(r["recording"]) for r in rows], dtype=np.int64)
        np.add.at(windows, (sub, labels, probs.argmax(axis=1)), 1.0)
    recordings = np.zeros((len(subjects), c, c))
    for key, (label, pred) in recording_predictions(rows, classes, rule).items():
        recordings[subject_index(key.split("/", 1)[1]), label, pred] += 1.0
    return windows, recordings


def point_metrics(windows: np.ndarray, recordings: np.ndarray) -> dict[str, float]:
    """The :data:`METRICS` of summed confusion matrices (..., C, C)."""
    w, r = confusion_metrics(windows), confusion_metrics(recordings)
    out = {k: w[k] for k in ("accuracy", "f1_macro", "mcc")}
    out.update({f"recording_{k}": r[k] for k in ("accuracy", "f1_macro", "mcc")})
    return out


class SubjectBootstrap:
    """Resamples of ``subjects`` (drawn once, seeded), shared by every row set it is
    given, so that differences are paired.

    Args:
        subjects: the subjects resampled (each row's subject must be one of them).
        subject_of: recording name -> subject.
        classes: class names (the ``p_<class>`` columns).
        n_boot: number of resamples.
        seed: seed of the draws.
        level: coverage of the percentile interval.
        rule: how a recording's windows make its answer (the task's ``recording_rule``).
    """

    def __init__(
        self,
        subjects: Sequence[str],
        subject_of: Mapping[str, str],
        classes: Sequence[str],
        *,
        n_boot: int = 1000,
        seed: int = 0,
        level: float = 0.95,
        rule: RecordingRule = "mean_prob",
    ) -> None:
        if not subjects:
            raise ValueError("subject bootstrap: no subjects")
        if n_boot < 1 or not 0 < level < 1:
            raise ValueError(
                f"subject bootstrap: n_boot={n_boot} must be >= 1 and level={level} in (0, 1)"
            )
        self.subjects = sorted(subjects)
        self.subject_of = dict(subject_of)
        self.classes = list(classes)
        self.n_boot, self.seed, self.level = n_boot, seed, level
        self.rule = check_recording_rule(rule)
        s = len(self.subjects)
        drawn = np.random.default_rng(seed).integers(0, s, size=(n_boot, s))
        #: (n_boot, S): how many times each subject is drawn in each resample
        self.counts = np.zeros((n_boot, s))
        np.add.at(self.counts, (np.repeat(np.arange(n_boot), s), drawn.ravel()), 1.0)

    def _confusions(self, rows):
        return subject_confusions(rows, self.classes, self.subject_of, self.subjects, self.rule)

    def point(self, rows: Sequence[Mapping[str, str]]) -> dict[str, float]:
        """The metrics of all rows (every subject once)."""
        w, r = self._confusions(rows)
        return {k: float(v) for k, v in point_metrics(w.sum(0), r.sum(0)).items()}

    def draws(self, rows: Sequence[Mapping[str, str]]) -> dict[str, np.ndarray]:
        """(n_boot,) values of every metric, one per resample."""
        w, r = self._confusions(rows)
        return point_metrics(
            np.einsum("bs,sij->bij", self.counts, w), np.einsum("bs,sij->bij", self.counts, r)
        )

    def _interval(self, values: np.ndarray) -> list[float]:
        tail = 100 * (1 - self.level) / 2
        lo, hi = np.percentile(values, [tail, 100 - tail])
        return [float(lo), float(hi)]

    def interval(self, rows: Sequence[Mapping[str, str]]) -> dict[str, list[float]]:
        """Percentile interval ``[lo, hi]`` of every metric."""
        return {k: self._interval(v) for k, v in self.draws(rows).items()}

    def difference(
        self, rows_a: Sequence[Mapping[str, str]], rows_b: Sequence[Mapping[str, str]]
    ) -> dict[str, dict[str, float | list[float]]]:
        """Paired difference a - b of every metric: ``{"diff": point difference,
        "ci": [lo, hi]}``, a and b evaluated on the same resampled subjects."""
        pa, pb = self.point(rows_a), self.point(rows_b)
        da, db = self.draws(rows_a), self.draws(rows_b)
        return {k: {"diff": pa[k] - pb[k], "ci": self._interval(da[k] - db[k])} for k in da}


def chance_metrics(rows: Sequence[Mapping[str, str]], classes: Sequence[str]) -> dict[str, float]:
    """The metrics of the expected confusion matrix of a uniform random guess over the
    classes (each true class spread evenly over the C predictions): accuracy 1/C,
    MCC 0, macro F1 from the class frequencies of the rows (window level) and of their
    recordings (recording level)."""
    c = len(classes)
    _, labels = _probs_and_labels(rows, classes)
    rec_labels = np.array(
        [label for label, _ in recording_predictions(rows, classes).values()], dtype=np.int64
    )
    windows = np.repeat(np.bincount(labels, minlength=c)[:, None] / c, c, axis=1)
    recordings = np.repeat(np.bincount(rec_labels, minlength=c)[:, None] / c, c, axis=1)
    # rounded: the MCC is 0 up to float error, shown as 0.0000 rather than -0.0000
    return {k: round(float(v), 12) + 0.0 for k, v in point_metrics(windows, recordings).items()}
