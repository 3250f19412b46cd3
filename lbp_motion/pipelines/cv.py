"""Cross-validation by subject: ``lbp cv --config FILE --folds loso|K``.

Works for any DataModule that knows its subjects (a ``subjects()`` method returning
subject ids, optionally ``subject_labels()`` for stratification) and accepts a
``split_file`` (CSV ``subject,split``). For each fold the test subjects are held out,
a validation split is drawn from the remaining (training) subjects (``--val_fraction``
of them, by default the config's ``data.val_fraction``), and ``lbp fit``
runs with that split file and tests its best checkpoint; then ``lbp predict`` on the
fold's test subjects keeps the window probabilities so that metrics can be pooled
over all folds.

Layout of the run directory ``<out_dir>/<name>/version_<n>/``::

    cv.json                   the settings (folds, seed, val_fraction), checked on resume
    folds.csv                 subject -> fold
    fold_<i>/split.csv        the fold's split file
    fold_<i>/metrics.json     the fold's metrics (copied from its fit run)
    fold_<i>/predictions.csv  the fold's test-window probabilities and labels
    fold_<i>/version_*/       the fold's full fit and predict runs
    fold_<i>/baseline_<name>.csv  the baselines' test-window probabilities (same form)
    recordings.csv            recording -> subject (for the subject bootstrap)
    summary.json              <metric>_mean, <metric>_std (sample std, ddof=1) over
                              folds for every test metric, plus pooled/<metric>, their
                              subject-bootstrap intervals, the baselines and the
                              differences model - baseline (docs/metrics.md)
    summary.md                the same as readable tables

Beside the model, on the same folds and the same test windows, ``lbp cv`` fits a
majority-class and a window-statistics baseline (:mod:`lbp_motion.evaluation.baselines`;
``--baselines none`` skips them) and gives every pooled metric a 95% interval by
bootstrap over subjects (:mod:`lbp_motion.evaluation.bootstrap`).

A fold whose ``metrics.json`` and ``predictions.csv`` exist is not run again (nor a
baseline whose ``baseline_<name>.csv`` exists): rerun
with ``--resume RUN_DIR`` to finish an interrupted cross-validation (with the same
``--folds``, ``--seed`` and ``--val_fraction``: a resume with others is refused). The
fold that was interrupted goes on from the ``last.ckpt`` of its fit (``lbp fit
--ckpt_path``, in a new ``fold_<i>/version_<n>``), or, when its fit was done and
tested, goes straight to predicting its test subjects.
"""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lbp_motion import runs
from lbp_motion.atomic import write_json
from lbp_motion.datasets.splits import split_subjects, subject_folds, write_split_file
from lbp_motion.errors import ConfigError, LbpError
from lbp_motion.evaluation.results import last_checkpoint, make_run_dir
from lbp_motion.interrupts import resume_hint
from lbp_motion.pipelines.cv_pooled import (
    _baseline_points,
    _bootstrap_intervals,
    _compared_metrics,
    _fold_baselines,
    _read_recording_subjects,
    _read_rows,
    pooled_metrics,
)


def cv_val_fraction(datamodule: Any) -> float:
    """The share of each fold's training subjects that validates when ``lbp cv`` is not
    given ``--val_fraction``: the config's ``data.val_fraction`` (the one share that
    ``lbp fit`` holds out too), 0.2 for a DataModule without one. A config for a small
    cohort lowers it to keep more subjects for training (at least one still validates)."""
    value = getattr(datamodule, "val_fraction", None)
    return 0.2 if value is None else float(value)


def fold_assignment(
    subjects: Sequence[str],
    test_subjects: Sequence[str],
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    labels: dict[str, str] | None = None,
) -> dict[str, str]:
    """Split of one fold: ``test`` for its test subjects; the others split into
    ``train`` and ``val`` (label-stratified when ``labels`` are given), at least one
    validation subject."""
    test = set(test_subjects)
    rest = [s for s in subjects if s not in test]
    if len(rest) < 2:
        raise ConfigError(
            "cross-validation needs at least two subjects outside each fold's test subjects"
        )
    strata = {s: (labels or {}).get(s, "all") for s in rest}
    inner = split_subjects(strata, val_fraction=val_fraction, test_fraction=0.0, seed=seed)
    if labels:  # a class whose only subjects went to val would be missing from training
        trained = {strata[s] for s in rest if inner[s] == "train"}
        for s in sorted(rest):
            if inner[s] == "val" and strata[s] not in trained:
                inner[s] = "train"
                trained.add(strata[s])
    if "val" not in inner.values():  # tiny data: make sure something validates
        per_class = Counter(strata[s] for s in rest if inner[s] == "train")
        spare = [s for s in sorted(rest) if per_class[strata[s]] > 1]  # keeps every class in train
        inner[(spare or sorted(rest))[0]] = "val"
    if "train" not in inner.values():
        raise ConfigError(
            "cross-validation left no training subject in a fold; lower --val_fraction"
        )
    return {**inner, **{s: "test" for s in test}}


def summarize(fold_metrics: list[dict[str, float]]) -> dict[str, float]:
    """``<metric>_mean`` and ``<metric>_std`` over folds for every ``test/`` metric."""
    keys = sorted({k for m in fold_metrics for k in m if k.startswith("test/")})
    out: dict[str, float] = {"folds": len(fold_metrics)}
    for key in keys:
        values = [m[key] for m in fold_metrics if m.get(key) is not None]
        if values:
            out[f"{key}_mean"] = statistics.fmean(values)
            out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


def _table(summary: dict[str, float], pooled: dict[str, float]) -> str:
    lines = ["| metric | mean | std | pooled |", "|---|---|---|---|"]
    for key in sorted(k[: -len("_mean")] for k in summary if k.endswith("_mean")):
        name = key[len("test/") :]
        p = pooled.get(f"pooled/{name}")
        lines.append(
            f"| {name} | {summary[key + '_mean']:.4f} | {summary[key + '_std']:.4f} | {'' if p is None else f'{p:.4f}'} |"
        )
    return "\n".join(lines) + "\n"


class _FoldData:
    """The DataModule of each fold (its ``split.csv``), set up for fitting when first
    asked for; :meth:`drop` lets it go, so that one fold's data is in memory at a time."""

    def __init__(self, run: Path, config_args: list[str]) -> None:
        self.run, self.config_args = run, config_args
        self.loaded: dict[int, object] = {}

    def __call__(self, i: int):
        if i not in self.loaded:
            split = self.run / f"fold_{i}" / "split.csv"
            dm = _datamodule([*self.config_args, "--data.split_file", str(split)])
            dm.setup("fit")
            self.loaded[i] = dm
        return self.loaded[i]

    def drop(self, i: int) -> None:
        self.loaded.pop(i, None)


def _baseline_rows(
    run: Path,
    rows: list[dict[str, str]],
    classes: list[str],
    names: list[str],
    notes: list[str],
    *,
    folds: int,
    same_classes: bool,
    fold_data: _FoldData,
    subject_of: dict[str, str] | None,
) -> tuple[dict[str, list[dict[str, str]]], dict[str, str] | None]:
    """The baselines ``names`` on every fold (:func:`_fold_baselines`, which may drop
    the statistics baselines from ``names``): baseline -> its test windows of all folds, with a
    ``fold`` column; and recording -> subject (None when the data cannot tell)."""
    base_rows: dict[str, list[dict[str, str]]] = {n: [] for n in names}
    for i in range(folds):
        subject_of = _fold_baselines(
            run,
            i,
            rows,
            classes,
            names,
            notes,
            same_classes=same_classes,
            fold_data=fold_data,
            subject_of=subject_of,
        )
        base_rows = {n: base_rows[n] for n in names}  # less the statistics baselines when skipped
        for name in names:
            base_rows[name].extend(
                {**r, "fold": str(i)}
                for r in _read_rows(run / f"fold_{i}" / f"baseline_{name}.csv")
            )
        fold_data.drop(i)  # one fold's data in memory at a time
    return base_rows, subject_of


def compare_with_baselines(
    run: Path,
    rows: list[dict[str, str]],
    classes: list[str],
    config_args: list[str],
    *,
    folds: int,
    baselines: str = "all",
    n_boot: int = 1000,
    seed: int = 0,
    data_classes: list[str] | None = None,
    rule: str = "mean_prob",
    pooled: dict[str, float] | None = None,
) -> dict:
    """Subject-bootstrap intervals of the pooled metrics of ``rows`` (the model's test
    windows of all folds, with a ``fold`` column) and, unless ``baselines`` is
    ``"none"``, the baselines on the same folds and windows with paired differences
    model - baseline. Returns the summary keys (docs/metrics.md); baseline predictions
    are kept in ``fold_<i>/baseline_<name>.csv`` and not recomputed when present.
    ``data_classes``: the DataModule's classes (default: read from fold 0's); ``rule``:
    how the windows of a recording make its answer, for the model and the baselines
    alike (the task's ``recording_rule``); ``pooled``: :func:`pooled_metrics` of
    ``rows`` when the caller has it already."""
    from lbp_motion.evaluation.baselines import BASELINES, FEATURE_BASELINES
    from lbp_motion.evaluation.bootstrap import METRICS, chance_metrics

    notes: list[str] = []
    names = [] if baselines == "none" else list(BASELINES)
    fold_data = _FoldData(run, config_args)
    subject_of = _read_recording_subjects(run)
    if names:
        data_classes = (
            list(data_classes) if data_classes is not None else list(fold_data(0).classes)
        )
        if data_classes != list(classes):  # e.g. an anomaly task's [no_pain, pain]
            names = [n for n in names if n not in FEATURE_BASELINES]
            notes.append(
                f"statistics baselines skipped: the task's classes {classes} are not the data's "
                f"{data_classes}; the majority class is that of the other folds' test windows"
            )
    base_rows, subject_of = _baseline_rows(
        run,
        rows,
        classes,
        names,
        notes,
        folds=folds,
        same_classes=data_classes == list(classes),
        fold_data=fold_data,
        subject_of=subject_of,
    )

    compared = _compared_metrics(rows)
    if names and len(compared) < len(METRICS):
        notes.append(
            "the model answers once per recording: model - baseline differences are given at recording "
            "level only (the baselines classify every window of the same recordings)"
        )
    model = pooled if pooled is not None else pooled_metrics(rows, classes, rule)
    out: dict = {"baselines": names, **_baseline_points(model, base_rows, classes, rule, compared)}
    out.update({f"chance/{m}": v for m, v in chance_metrics(rows, classes).items()})
    if subject_of is None:
        notes.append(
            "no intervals: the DataModule has no recording_subjects to resample subjects by"
        )
    else:
        out.update(
            _bootstrap_intervals(
                rows, base_rows, subject_of, classes, compared, n_boot=n_boot, seed=seed, rule=rule
            )
        )
    out["baseline_notes"] = notes
    return out


def _datamodule(config_args: list[str]):
    """Instantiate only what the config describes, without running anything."""
    dm = runs.build(args=config_args).datamodule
    if not hasattr(dm, "subjects"):
        raise ConfigError(
            f"{type(dm).__name__} has no subjects() method: it cannot be cross-validated by subject"
        )
    return dm


def _check_resume(run: Path, settings: dict) -> None:
    """A resumed cross-validation must use the folds it started with: compare the
    settings stored in ``cv.json`` (one error naming the first that differs)."""
    if not run.is_dir():
        raise ConfigError(f"--resume {run}: folder not found")
    stored_path = run / "cv.json"
    if not stored_path.is_file():
        return  # a run from before cv.json: nothing to compare
    stored = json.loads(stored_path.read_text())
    for key, value in settings.items():
        if key in stored and stored[key] != value:
            raise ConfigError(
                f"{stored_path}: field {key!r} is {stored[key]!r} but this run asks for {value!r}; "
                f"resume with the original settings, or start a new cross-validation"
            )


def _check_options(baselines: str, n_boot: int) -> None:
    """Refuse a ``--baselines`` other than all or none and fewer than one resample."""
    if baselines not in ("all", "none"):
        raise ConfigError(f"--baselines {baselines!r}: expected 'all' or 'none'")
    if n_boot < 1:
        raise ConfigError(f"--bootstrap {n_boot}: expected a number of resamples of at least 1")


def _default_name(config_args: list[str]) -> str:
    """``<stem of the last --config>-cv``, or ``cv-cv`` without a config."""
    configs = [config_args[i + 1] for i, a in enumerate(config_args) if a == "--config"]
    return (Path(configs[-1]).stem if configs else "cv") + "-cv"


def _resume_hint(run: Path):
    """What an interrupted cross-validation tells the user (:func:`resume_hint`)."""
    return resume_hint(f"resume with the same command and --resume {run} (finished folds are kept)")


def _write_plan(
    run: Path, plan: list[list[str]], settings: dict, config_args: list[str], *, resume: bool
) -> None:
    """Check a resume's settings against ``cv.json``, then write ``cv.json`` and
    ``folds.csv`` (subject -> fold)."""
    if resume:
        _check_resume(run, settings)
    write_json(run / "cv.json", {**settings, "config_args": list(config_args)})
    with open(run / "folds.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "fold"])
        for i, test in enumerate(plan):
            w.writerows([s, i] for s in test)


def _fold_done(fold: Path) -> bool:
    """A fold with its ``metrics.json`` and ``predictions.csv`` is not run again."""
    return (fold / "metrics.json").is_file() and (fold / "predictions.csv").is_file()


def _fit_fold(fold: Path, config_args: list[str], overrides: dict[str, Any]) -> runs.RunResult:
    """A fold's fit: that of an earlier attempt when it was fitted and tested (an
    interrupt came later, in predict), else ``lbp fit``, going on from the ``last.ckpt``
    an interrupted attempt left (:func:`last_checkpoint`) or from the start."""
    last = last_checkpoint(fold)
    if last is not None:
        earlier = runs.RunResult.from_run_dir(last.parent.parent)
        if earlier.best_checkpoint is not None and any(
            k.startswith("test/") for k in earlier.metrics
        ):
            return earlier
    return runs.fit(args=config_args, overrides=overrides, ckpt_path=last)


def _run_fold(run: Path, i: int, assignment: dict[str, str], config_args: list[str]) -> None:
    """Fold ``i``: write its split file (``assignment``: subject -> train/val/test), fit,
    predict its test subjects with the best checkpoint, and keep ``predictions.csv``
    and ``metrics.json`` in ``fold_<i>/``."""
    fold = run / f"fold_{i}"
    split = write_split_file(fold / "split.csv", assignment)
    common = {
        "data.split_file": split,
        "run.out_dir": run,
        "trainer.default_root_dir": run,
        "run.name": f"fold_{i}",
    }
    try:
        fitted = _fit_fold(fold, config_args, common)
    except LbpError as err:
        raise LbpError(f"fold {i}: {err}; finished folds are kept: --resume {run}") from err
    metrics = fitted.metrics
    predicted = runs.predict(
        args=config_args,
        overrides={**common, "data.predict_split": "test"},
        ckpt_path=fitted.best_checkpoint,
    )
    if predicted.predictions is None:
        raise LbpError(f"fold {i}: lbp predict wrote no predictions.csv in {predicted.run_dir}")
    shutil.copy(predicted.predictions, fold / "predictions.csv")
    write_json(fold / "metrics.json", metrics)


def _run_folds(
    run: Path,
    plan: list[list[str]],
    subjects: list[str],
    config_args: list[str],
    *,
    val_fraction: float,
    seed: int,
    labels: dict[str, str] | None,
) -> tuple[list[dict], list[dict[str, str]]]:
    """Run every fold not done yet; returns the folds' metrics and their test windows
    (``predictions.csv`` rows with a ``fold`` column)."""
    fold_metrics, rows = [], []
    with _resume_hint(run):
        for i, test in enumerate(plan):
            fold = run / f"fold_{i}"
            fold.mkdir(exist_ok=True)
            if not _fold_done(fold):
                assignment = fold_assignment(
                    subjects, test, val_fraction=val_fraction, seed=seed + i, labels=labels
                )
                _run_fold(run, i, assignment, config_args)
            fold_metrics.append(json.loads((fold / "metrics.json").read_text()))
            rows.extend({**r, "fold": str(i)} for r in _read_rows(fold / "predictions.csv"))
    return fold_metrics, rows


def _cv_summary(
    run: Path,
    fold_metrics: list[dict],
    rows: list[dict[str, str]],
    data_classes: list[str],
    config_args: list[str],
    *,
    folds: int,
    baselines: str,
    n_boot: int,
    seed: int,
) -> tuple[dict, dict[str, float]]:
    """The summary of the folds (:func:`summarize`, the pooled metrics and
    :func:`compare_with_baselines`) and the pooled metrics alone."""
    summary = summarize(fold_metrics)
    classes = data_classes
    # the task's classes, which may differ from the data's (e.g. AnomalyTask's [no_pain, pain])
    if rows:
        classes = [k[2:] for k in rows[0] if k.startswith("p_")] or classes
    # the task's rule (metrics.json of every fold), so pooled recording metrics are those of its fits
    rule = next((m["recording_rule"] for m in fold_metrics if m.get("recording_rule")), "mean_prob")
    pooled = pooled_metrics(rows, classes, rule) if rows and "label" in rows[0] else {}
    summary.update(pooled)
    if pooled:
        with _resume_hint(run):
            summary.update(
                compare_with_baselines(
                    run,
                    rows,
                    classes,
                    config_args,
                    folds=folds,
                    baselines=baselines,
                    n_boot=n_boot,
                    seed=seed,
                    data_classes=data_classes,
                    rule=rule,
                    pooled=pooled,
                )
            )
        summary["recording_rule"] = rule
    monitor = next((m["monitor"] for m in fold_metrics if m.get("monitor")), None)
    if monitor:  # the verdicts of summary.md judge the metric the folds selected by
        summary["monitor"] = monitor
    return summary, pooled


def _write_summary(
    run: Path, summary: dict, pooled: dict[str, float], *, folds: int, spec: str, subjects: int
) -> None:
    """Write ``summary.json`` and ``summary.md`` (``folds`` folds of the ``--folds``
    ``spec`` over ``subjects`` subjects)."""
    from lbp_motion.evaluation.tables import comparison_markdown

    write_json(run / "summary.json", summary)
    comparison = comparison_markdown(summary)
    (run / "summary.md").write_text(
        f"# Cross-validation: {folds} folds ({spec}), {subjects} subjects\n\n"
        + _table(summary, pooled)
        + ("\n" + comparison if comparison else "")
    )


def run_cv(
    config_args: list[str],
    *,
    folds: str | int = "loso",
    val_fraction: float | None = None,
    seed: int = 0,
    out_dir: str = "runs",
    name: str | None = None,
    resume: str | None = None,
    baselines: str = "all",
    n_boot: int = 1000,
) -> Path:
    """Run the cross-validation; returns the run directory (see the module docstring).
    ``baselines``: ``"all"`` or ``"none"``; ``n_boot``: subject-bootstrap resamples;
    ``val_fraction``: None takes the config's ``data.val_fraction``."""
    _check_options(baselines, n_boot)
    dm = _datamodule(config_args)
    if val_fraction is None:
        val_fraction = cv_val_fraction(dm)
    subjects = list(dm.subjects())
    labels = dm.subject_labels() if hasattr(dm, "subject_labels") else None
    data_classes = list(dm.classes)
    if name is None:
        name = _default_name(config_args)
    run = Path(resume) if resume else make_run_dir(out_dir, name)
    plan = subject_folds(subjects, folds, seed)
    settings = {
        "folds": str(folds),
        "seed": seed,
        "val_fraction": val_fraction,
        "subjects": len(subjects),
    }
    _write_plan(run, plan, settings, config_args, resume=bool(resume))
    fold_metrics, rows = _run_folds(
        run, plan, subjects, config_args, val_fraction=val_fraction, seed=seed, labels=labels
    )
    summary, pooled = _cv_summary(
        run,
        fold_metrics,
        rows,
        data_classes,
        config_args,
        folds=len(plan),
        baselines=baselines,
        n_boot=n_boot,
        seed=seed,
    )
    summary["folds_spec"] = str(folds)
    _write_summary(run, summary, pooled, folds=len(plan), spec=str(folds), subjects=len(subjects))
    return run
