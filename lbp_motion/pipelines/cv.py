"""Cross-validation by subject: ``lbp cv --config FILE --folds loso|K``.

Works for any DataModule that knows its subjects (a ``subjects()`` method returning
subject ids, optionally ``subject_labels()`` for stratification) and accepts a
``split_file`` (CSV ``subject,split``). For each fold the test subjects are held out,
a validation split is drawn from the remaining (training) subjects, and ``lbp fit``
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
``--folds``, ``--seed`` and ``--val_fraction``: a resume with others is refused).
"""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from lbp_motion import runs
from lbp_motion.atomic import atomic_write, write_json
from lbp_motion.datasets.splits import split_subjects, subject_folds, write_split_file
from lbp_motion.errors import ConfigError, LbpError
from lbp_motion.evaluation.results import make_run_dir
from lbp_motion.interrupts import resume_hint


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
    from lbp_motion.evaluation.baselines import (
        BASELINES,
        fold_baselines,
        has_windows,
        majority_class,
        window_dataset,
    )
    from lbp_motion.evaluation.bootstrap import METRICS, SubjectBootstrap, chance_metrics

    notes: list[str] = []
    names = [] if baselines == "none" else list(BASELINES)
    dms: dict[int, object] = {}

    def fold_dm(i: int):
        if i not in dms:
            dm = _datamodule(
                [*config_args, "--data.split_file", str(run / f"fold_{i}" / "split.csv")]
            )
            dm.setup("fit")
            dms[i] = dm
        return dms[i]

    subject_of = None
    if (run / "recordings.csv").is_file():
        subject_of = {r["recording"]: r["subject"] for r in _read_rows(run / "recordings.csv")}
    if names:
        data_classes = list(data_classes) if data_classes is not None else list(fold_dm(0).classes)
        if data_classes != list(classes):  # e.g. an anomaly task's [no_pain, pain]
            names.remove("window_stats")
            notes.append(
                f"window statistics baseline skipped: the task's classes {classes} are not the data's "
                f"{data_classes}; the majority class is that of the other folds' test windows"
            )
    base_rows: dict[str, list[dict[str, str]]] = {n: [] for n in names}
    columns = ["recording", "start", "predicted", "label", *(f"p_{c}" for c in classes)]
    for i in range(folds):
        fold = run / f"fold_{i}"
        missing = [n for n in names if not (fold / f"baseline_{n}.csv").is_file()]
        if subject_of is None or (missing and data_classes == list(classes)):
            dm = fold_dm(i)
            if subject_of is None:
                subjects = getattr(dm, "recording_subjects", None)
                if subjects is not None:
                    subject_of = dict(zip(dm.recording_names, subjects))
                    _write_rows(
                        run / "recordings.csv",
                        [{"recording": r, "subject": s} for r, s in subject_of.items()],
                        ["recording", "subject"],
                    )
            if "window_stats" in missing and not has_windows(
                window_dataset(dm.real_train_dataset())
            ):
                names.remove("window_stats")
                missing.remove("window_stats")
                del base_rows["window_stats"]
                notes.append(
                    f"window statistics baseline skipped: {type(dm).__name__}'s samples are not windows "
                    "with x (T, F) and mask (T,)"
                )
            if missing and data_classes == list(classes):
                for name, computed in fold_baselines(dm, missing).items():
                    _write_rows(fold / f"baseline_{name}.csv", computed, columns)
        if "majority" in missing and data_classes != list(classes):
            others = [classes.index(r["label"]) for r in rows if r["fold"] != str(i)]
            top = classes[majority_class(others, len(classes))]
            own = [
                {
                    **{k: v for k, v in r.items() if k != "fold"},
                    "predicted": top,
                    **{f"p_{c}": "1.000000" if c == top else "0.000000" for c in classes},
                }
                for r in rows
                if r["fold"] == str(i)
            ]
            _write_rows(fold / "baseline_majority.csv", own, columns)
        for name in names:
            base_rows[name].extend(
                {**r, "fold": str(i)} for r in _read_rows(fold / f"baseline_{name}.csv")
            )
        dms.pop(i, None)  # one fold's data in memory at a time

    out: dict = {"baselines": names}
    # a model with one answer per recording (a recording-level task) is compared with the
    # window baselines at recording level only
    per_recording = len(rows) == len({(r["fold"], r["recording"]) for r in rows})
    compared = (
        [m for m in METRICS if m.startswith("recording_")] if per_recording else list(METRICS)
    )
    if names and len(compared) < len(METRICS):
        notes.append(
            "the model answers once per recording: model - baseline differences are given at recording "
            "level only (the baselines classify every window of the same recordings)"
        )
    model = pooled if pooled is not None else pooled_metrics(rows, classes, rule)
    points = {name: pooled_metrics(r, classes, rule) for name, r in base_rows.items()}
    for name, point in points.items():
        out.update({f"baseline/{name}/pooled/{m}": point[f"pooled/{m}"] for m in METRICS})
        out.update(
            {f"diff/{name}/{m}": model[f"pooled/{m}"] - point[f"pooled/{m}"] for m in compared}
        )
    out.update({f"chance/{m}": v for m, v in chance_metrics(rows, classes).items()})
    if subject_of is None:
        notes.append(
            "no intervals: the DataModule has no recording_subjects to resample subjects by"
        )
    else:
        subjects = sorted(
            {subject_of[r["recording"]] for rs in (rows, *base_rows.values()) for r in rs}
        )
        boot = SubjectBootstrap(subjects, subject_of, classes, n_boot=n_boot, seed=seed, rule=rule)
        out.update(
            {
                "bootstrap/subjects": len(subjects),
                "bootstrap/resamples": n_boot,
                "bootstrap/seed": seed,
                "bootstrap/level": boot.level,
            }
        )
        out.update({f"pooled/{m}_ci": ci for m, ci in boot.interval(rows).items()})
        for name, brows in base_rows.items():
            out.update(
                {f"baseline/{name}/pooled/{m}_ci": ci for m, ci in boot.interval(brows).items()}
            )
            out.update(
                {
                    f"diff/{name}/{m}_ci": d["ci"]
                    for m, d in boot.difference(rows, brows).items()
                    if m in compared
                }
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


def run_cv(
    config_args: list[str],
    *,
    folds: str | int = "loso",
    val_fraction: float = 0.2,
    seed: int = 0,
    out_dir: str = "runs",
    name: str | None = None,
    resume: str | None = None,
    baselines: str = "all",
    n_boot: int = 1000,
) -> Path:
    """Run the cross-validation; returns the run directory (see the module docstring).
    ``baselines``: ``"all"`` or ``"none"``; ``n_boot``: subject-bootstrap resamples."""
    from lbp_motion.evaluation.tables import comparison_markdown

    if baselines not in ("all", "none"):
        raise ConfigError(f"--baselines {baselines!r}: expected 'all' or 'none'")
    if n_boot < 1:
        raise ConfigError(f"--bootstrap {n_boot}: expected a number of resamples of at least 1")

    dm = _datamodule(config_args)
    subjects = list(dm.subjects())
    labels = dm.subject_labels() if hasattr(dm, "subject_labels") else None
    classes = data_classes = list(dm.classes)
    if name is None:
        configs = [config_args[i + 1] for i, a in enumerate(config_args) if a == "--config"]
        name = (Path(configs[-1]).stem if configs else "cv") + "-cv"
    run = Path(resume) if resume else make_run_dir(out_dir, name)
    plan = subject_folds(subjects, folds, seed)
    settings = {
        "folds": str(folds),
        "seed": seed,
        "val_fraction": val_fraction,
        "subjects": len(subjects),
    }
    _check_resume(run, settings) if resume else None
    write_json(run / "cv.json", {**settings, "config_args": list(config_args)})
    with open(run / "folds.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "fold"])
        for i, test in enumerate(plan):
            w.writerows([s, i] for s in test)

    fold_metrics, rows = [], []
    with resume_hint(f"resume with the same command and --resume {run} (finished folds are kept)"):
        for i, test in enumerate(plan):
            fold = run / f"fold_{i}"
            fold.mkdir(exist_ok=True)
            done = (fold / "metrics.json").is_file() and (fold / "predictions.csv").is_file()
            if not done:
                split = write_split_file(
                    fold / "split.csv",
                    fold_assignment(
                        subjects, test, val_fraction=val_fraction, seed=seed + i, labels=labels
                    ),
                )
                common = {
                    "data.split_file": split,
                    "run.out_dir": run,
                    "trainer.default_root_dir": run,
                    "run.name": f"fold_{i}",
                }
                try:
                    fitted = runs.fit(args=config_args, overrides=common)
                except LbpError as err:
                    raise LbpError(
                        f"fold {i}: {err}; finished folds are kept: --resume {run}"
                    ) from err
                metrics = fitted.metrics
                predicted = runs.predict(
                    args=config_args,
                    overrides={**common, "data.predict_split": "test"},
                    ckpt_path=fitted.best_checkpoint,
                )
                if predicted.predictions is None:
                    raise LbpError(
                        f"fold {i}: lbp predict wrote no predictions.csv in {predicted.run_dir}"
                    )
                shutil.copy(predicted.predictions, fold / "predictions.csv")
                write_json(fold / "metrics.json", metrics)
            fold_metrics.append(json.loads((fold / "metrics.json").read_text()))
            with open(fold / "predictions.csv", newline="") as fh:
                rows.extend({**r, "fold": str(i)} for r in csv.DictReader(fh))

    summary = summarize(fold_metrics)
    if (
        rows
    ):  # the task's classes, which may differ from the data's (e.g. AnomalyTask's [no_pain, pain])
        classes = [k[2:] for k in rows[0] if k.startswith("p_")] or classes
    # the task's rule (metrics.json of every fold), so pooled recording metrics are those of its fits
    rule = next((m["recording_rule"] for m in fold_metrics if m.get("recording_rule")), "mean_prob")
    pooled = pooled_metrics(rows, classes, rule) if rows and "label" in rows[0] else {}
    summary.update(pooled)
    if pooled:
        with resume_hint(
            f"resume with the same command and --resume {run} (finished folds are kept)"
        ):
            summary.update(
                compare_with_baselines(
                    run,
                    rows,
                    classes,
                    config_args,
                    folds=len(plan),
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
    summary["folds_spec"] = str(folds)
    write_json(run / "summary.json", summary)
    comparison = comparison_markdown(summary)
    (run / "summary.md").write_text(
        f"# Cross-validation: {len(plan)} folds ({folds}), {len(subjects)} subjects\n\n"
        + _table(summary, pooled)
        + ("\n" + comparison if comparison else "")
    )
    return run
