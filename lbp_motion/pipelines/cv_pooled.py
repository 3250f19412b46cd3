"""The folds of ``lbp cv`` taken together (:mod:`lbp_motion.pipelines.cv` runs them).

* :func:`pooled_metrics`: the metrics over the test windows of all folds at once;
* the baselines on the same folds and windows (``fold_<i>/baseline_<name>.csv``,
  written once: a resume keeps them), the differences model - baseline and their
  subject-bootstrap intervals: the steps of
  :func:`lbp_motion.pipelines.cv.compare_with_baselines`;
* ``recordings.csv`` (recording -> subject), which the subject bootstrap resamples by.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from lbp_motion.atomic import atomic_write


def pooled_metrics(
    rows: list[dict[str, str]], classes: Sequence[str], rule: str = "mean_prob"
) -> dict[str, float]:
    """Metrics over the test windows of all folds together (from predictions.csv rows
    with ``label`` and ``p_<class>`` columns), window and recording level (the windows
    of a recording combined by ``rule``, the task's ``recording_rule``)."""
    from lbp_motion.evaluation.metrics import (
        classification_metrics,
        flatten_metrics,
        recording_metrics,
    )

    index = {c: i for i, c in enumerate(classes)}
    probs = torch.tensor([[float(r[f"p_{c}"]) for c in classes] for r in rows])
    target = torch.tensor([index[r["label"]] for r in rows])
    names = sorted({r["fold"] + "/" + r["recording"] for r in rows})
    rec = torch.tensor([names.index(r["fold"] + "/" + r["recording"]) for r in rows])
    m = classification_metrics(len(classes))
    m.update(probs, target)
    out = flatten_metrics(m.compute(), classes, "pooled")
    out.update(recording_metrics(rec, probs, target, "pooled", rule))
    return {k: float(v) for k, v in out.items()}


def _read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _write_rows(path: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    """Write a CSV whole or not at all (a resume skips files that exist)."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)


def _read_recording_subjects(run: Path) -> dict[str, str] | None:
    """recording -> subject from the run's ``recordings.csv``; None when there is none yet."""
    if not (run / "recordings.csv").is_file():
        return None
    return {r["recording"]: r["subject"] for r in _read_rows(run / "recordings.csv")}


def _write_recording_subjects(run: Path, dm) -> dict[str, str] | None:
    """recording -> subject of the DataModule ``dm`` (its ``recording_subjects``), kept
    in the run's ``recordings.csv``; None when the DataModule cannot tell."""
    subjects = getattr(dm, "recording_subjects", None)
    if subjects is None:
        return None
    subject_of = dict(zip(dm.recording_names, subjects))
    _write_rows(
        run / "recordings.csv",
        [{"recording": r, "subject": s} for r, s in subject_of.items()],
        ["recording", "subject"],
    )
    return subject_of


def _baseline_columns(classes: list[str]) -> list[str]:
    """The columns of a ``baseline_<name>.csv``."""
    return ["recording", "start", "predicted", "label", *(f"p_{c}" for c in classes)]


def _majority_rows(rows: list[dict[str, str]], classes: list[str], i: int) -> list[dict[str, str]]:
    """The majority-class baseline of fold ``i`` from the model's test windows
    (``rows``): every window of the fold gets the class most frequent among the other
    folds' test windows (for a task whose classes are not the data's)."""
    from lbp_motion.evaluation.baselines import majority_class

    others = [classes.index(r["label"]) for r in rows if r["fold"] != str(i)]
    top = classes[majority_class(others, len(classes))]
    return [
        {
            **{k: v for k, v in r.items() if k != "fold"},
            "predicted": top,
            **{f"p_{c}": "1.000000" if c == top else "0.000000" for c in classes},
        }
        for r in rows
        if r["fold"] == str(i)
    ]


def _fold_baselines(
    run: Path,
    i: int,
    rows: list[dict[str, str]],
    classes: list[str],
    names: list[str],
    notes: list[str],
    *,
    same_classes: bool,
    fold_data: Callable[[int], Any],
    subject_of: dict[str, str] | None,
) -> dict[str, str] | None:
    """Write fold ``i``'s missing ``baseline_<name>.csv`` for the baselines ``names``
    (``same_classes``: the task's classes are the data's; if not, only the majority
    class, from ``rows``). Removes the statistics baselines from ``names`` (with a line in
    ``notes``) when the data has no windows. ``fold_data(i)``: fold ``i``'s DataModule,
    set up for fitting (asked for only when needed). Returns recording -> subject:
    ``subject_of``, or when that is None, what the fold's DataModule tells."""
    from lbp_motion.evaluation.baselines import (
        FEATURE_BASELINES,
        fold_baselines,
        has_windows,
        labels_per_recording,
        window_dataset,
    )

    fold = run / f"fold_{i}"
    missing = [n for n in names if not (fold / f"baseline_{n}.csv").is_file()]
    if subject_of is None or (missing and same_classes):
        dm = fold_data(i)
        if subject_of is None:
            subject_of = _write_recording_subjects(run, dm)
        skipped = [n for n in FEATURE_BASELINES if n in missing]
        if skipped and not has_windows(window_dataset(dm.real_train_dataset())):
            for name in skipped:
                names.remove(name)
                missing.remove(name)
            notes.append(
                f"statistics baselines skipped: {type(dm).__name__}'s samples are not windows "
                "with x (T, F) and mask (T,)"
            )
        if "recording_stats" in missing and not labels_per_recording(
            window_dataset(dm.real_train_dataset())
        ):
            names.remove("recording_stats")
            missing.remove("recording_stats")
            notes.append(
                f"recording statistics baseline skipped: {type(dm).__name__}'s labels change "
                "within a recording (it needs one label per recording)"
            )
        if missing and same_classes:
            for name, computed in fold_baselines(dm, missing).items():
                _write_rows(fold / f"baseline_{name}.csv", computed, _baseline_columns(classes))
    if "majority" in missing and not same_classes:
        _write_rows(
            fold / "baseline_majority.csv",
            _majority_rows(rows, classes, i),
            _baseline_columns(classes),
        )
    return subject_of


def _compared_metrics(rows: list[dict[str, str]]) -> list[str]:
    """The metrics of the differences model - baseline: all, or the recording-level
    ones only when the model answers once per recording (a recording-level task; the
    window baselines are compared with it at recording level)."""
    from lbp_motion.evaluation.bootstrap import METRICS

    per_recording = len(rows) == len({(r["fold"], r["recording"]) for r in rows})
    return [m for m in METRICS if m.startswith("recording_")] if per_recording else list(METRICS)


def _baseline_points(
    model: dict[str, float],
    base_rows: dict[str, list[dict[str, str]]],
    classes: list[str],
    rule: str,
    compared: list[str],
) -> dict[str, float]:
    """Each baseline's pooled metrics (``baseline/<name>/pooled/<metric>``) and the
    differences model - baseline (``diff/<name>/<metric>``, the ``compared`` metrics;
    the recording-level ones for a recording baseline)."""
    from lbp_motion.evaluation.baselines import compared_metrics
    from lbp_motion.evaluation.bootstrap import METRICS

    out: dict[str, float] = {}
    points = {name: pooled_metrics(r, classes, rule) for name, r in base_rows.items()}
    for name, point in points.items():
        out.update({f"baseline/{name}/pooled/{m}": point[f"pooled/{m}"] for m in METRICS})
        out.update(
            {
                f"diff/{name}/{m}": model[f"pooled/{m}"] - point[f"pooled/{m}"]
                for m in compared_metrics(name, compared)
            }
        )
    return out


def _bootstrap_intervals(
    rows: list[dict[str, str]],
    base_rows: dict[str, list[dict[str, str]]],
    subject_of: dict[str, str],
    classes: list[str],
    compared: list[str],
    *,
    n_boot: int,
    seed: int,
    rule: str,
) -> dict:
    """Subject-bootstrap intervals of the model's and the baselines' pooled metrics and
    of the differences model - baseline (``compared`` metrics), with the bootstrap's
    settings (``bootstrap/...``)."""
    from lbp_motion.evaluation.baselines import compared_metrics
    from lbp_motion.evaluation.bootstrap import SubjectBootstrap

    subjects = sorted(
        {subject_of[r["recording"]] for rs in (rows, *base_rows.values()) for r in rs}
    )
    boot = SubjectBootstrap(subjects, subject_of, classes, n_boot=n_boot, seed=seed, rule=rule)
    out: dict = {
        "bootstrap/subjects": len(subjects),
        "bootstrap/resamples": n_boot,
        "bootstrap/seed": seed,
        "bootstrap/level": boot.level,
    }
    out.update({f"pooled/{m}_ci": ci for m, ci in boot.interval(rows).items()})
    for name, brows in base_rows.items():
        out.update({f"baseline/{name}/pooled/{m}_ci": ci for m, ci in boot.interval(brows).items()})
        out.update(
            {
                f"diff/{name}/{m}_ci": d["ci"]
                for m, d in boot.difference(rows, brows).items()
                if m in compared_metrics(name, compared)
            }
        )
    return out
