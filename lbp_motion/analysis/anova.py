"""Model comparison by one-way ANOVA over per-fold scores: ``lbp analyze anova``.

``lbp analyze anova CV_DIR [CV_DIR ...] [--metric test/accuracy] [--out_dir DIR]`` reads
the metric from every ``fold_<i>/metrics.json`` of each ``lbp cv`` run directory (one
group per directory, the folds its observations), runs :func:`scipy.stats.f_oneway`
and writes ``anova.csv`` and ``anova.md`` into ``--out_dir`` (default ``runs/analysis``),
printing the markdown.

A group is named after the model: for ``runs/<name>/version_<n>`` that is ``<name>``
(the directory's parent); a directory not named ``version_<n>`` is named itself. When
two directories get the same name they are told apart as ``<name>/version_<n>``.

The CSV has one row per group (``n``, ``mean``, ``std``; sample std, ddof=1, NaN for
one fold) and then the ANOVA rows ``between``, ``within`` and ``total`` (``df``,
``SS``, ``MS``; ``F`` and ``p`` on ``between``).

The ANOVA is computed whatever the groups are, but ``anova.md`` (and the printed table)
opens with a note when they are not comparable: when the models predict different
classes (read from the ``test/f1/<class>`` keys of their first fold; e.g. a two-class
anomaly detector beside three-class pain models, whose accuracies measure different
tasks), or when their ``folds.csv`` put the subjects in different folds.
"""

from __future__ import annotations

import csv
import json
import math
import re
import warnings
from pathlib import Path

import numpy as np

from lbp_motion.atomic import atomic_write, write_text
from lbp_motion.errors import LbpError

CSV_FIELDS = ["row", "n", "mean", "std", "df", "SS", "MS", "F", "p"]


def one_way_anova(groups: dict[str, list[float]]) -> dict:
    """One-way ANOVA of ``groups`` (name -> observations).

    Returns ``F``, ``p`` (scipy's f_oneway), ``df_between`` = k - 1, ``df_within`` =
    N - k, ``ss_between``, ``ss_within`` and ``groups``: name -> ``n``, ``mean``, ``std``
    (ddof=1; NaN for one observation) and ``values``. F and p are NaN when every
    observation within each group is equal (no within-group variance)."""
    from scipy.stats import f_oneway

    if len(groups) < 2:
        raise LbpError(
            f"ANOVA needs at least two groups, got {len(groups)}: {', '.join(groups) or 'none'}"
        )
    arrays = {}
    for name, values in groups.items():
        a = np.asarray(values, dtype=float).reshape(-1)
        if a.size == 0:
            raise LbpError(f"ANOVA group {name!r} has no observations")
        if not np.all(np.isfinite(a)):
            raise LbpError(f"ANOVA group {name!r} has NaN or infinite observations")
        arrays[name] = a
    k, n_total = len(arrays), sum(a.size for a in arrays.values())
    if n_total - k < 1:
        raise LbpError(
            f"ANOVA needs more observations than groups ({n_total} observations, {k} groups)"
        )
    grand = np.concatenate(list(arrays.values())).mean()
    ss_between = float(sum(a.size * (a.mean() - grand) ** 2 for a in arrays.values()))
    ss_within = float(sum(((a - a.mean()) ** 2).sum() for a in arrays.values()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input / degenerate: F and p come back NaN or inf
        res = f_oneway(*arrays.values())
    f, p = float(res.statistic), float(res.pvalue)
    if ss_within == 0.0:
        f, p = float("nan"), float("nan")
    return {
        "F": f,
        "p": p,
        "df_between": k - 1,
        "df_within": n_total - k,
        "ss_between": ss_between,
        "ss_within": ss_within,
        "groups": {
            name: {
                "n": int(a.size),
                "mean": float(a.mean()),
                "std": float(a.std(ddof=1)) if a.size > 1 else float("nan"),
                "values": [float(v) for v in a],
            }
            for name, a in arrays.items()
        },
    }


def _fold_index(path: Path) -> int:
    m = re.fullmatch(r"fold_(\d+)", path.name)
    return int(m.group(1)) if m else -1


def _fold_dirs(cv_dir: Path) -> list[Path]:
    """The ``fold_<i>`` folders of an ``lbp cv`` run that have a ``metrics.json``, by i."""
    folds = (f for f in cv_dir.glob("fold_*") if _fold_index(f) >= 0)
    return sorted((f for f in folds if (f / "metrics.json").is_file()), key=_fold_index)


def _group_name(cv_dir: Path) -> str:
    return (
        cv_dir.parent.name
        if re.fullmatch(r"version_\d+", cv_dir.name) and cv_dir.parent.name
        else cv_dir.name
    )


def fold_scores(cv_dir: str | Path, metric: str = "test/accuracy") -> list[float]:
    """``metric`` from each ``fold_<i>/metrics.json`` of an ``lbp cv`` run, by fold index."""
    cv_dir = Path(cv_dir)
    if not cv_dir.is_dir():
        raise LbpError(f"{cv_dir}: folder not found")
    folds = _fold_dirs(cv_dir)
    if not folds:
        raise LbpError(f"{cv_dir}: no fold_<i>/metrics.json (is it an `lbp cv` run directory?)")
    values = []
    for fold in folds:
        try:
            metrics = json.loads((fold / "metrics.json").read_text())
        except json.JSONDecodeError as err:
            raise LbpError(f"{fold / 'metrics.json'}: not valid JSON ({err})") from None
        value = metrics.get(metric)
        if value is None:
            known = ", ".join(sorted(k for k in metrics if k.startswith("test/"))) or "none"
            raise LbpError(
                f"{fold / 'metrics.json'}: no metric {metric!r} (test metrics there: {known})"
            )
        values.append(float(value))
    return values


def fold_classes(cv_dir: str | Path) -> list[str]:
    """The class names of an ``lbp cv`` run: the ``<class>`` of the ``test/f1/<class>``
    keys in its first fold's ``metrics.json`` (in their order; empty when there are none)."""
    folds = _fold_dirs(Path(cv_dir))
    if not folds:
        return []
    metrics = json.loads((folds[0] / "metrics.json").read_text())
    return [k.removeprefix("test/f1/") for k in metrics if k.startswith("test/f1/")]


def _fold_assignment(cv_dir: Path) -> dict[str, str] | None:
    path = cv_dir / "folds.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        return {row.get("subject"): row.get("fold") for row in csv.DictReader(fh)}


def comparability_notes(cv_dirs: dict[str, Path]) -> list[str]:
    """Why the groups' scores may not be comparable (see the module docstring); empty
    when nothing was found. ``cv_dirs``: group name -> ``lbp cv`` run directory."""
    notes = []
    classes = {name: fold_classes(d) for name, d in cv_dirs.items()}
    if len({frozenset(c) for c in classes.values() if c}) > 1:  # the same classes in any order
        listed = "; ".join(f"{name}: {', '.join(c) or '?'}" for name, c in classes.items())
        notes.append(
            f"the models predict different classes ({listed}): their scores measure "
            "different tasks and are not comparable"
        )
    folds = {name: _fold_assignment(d) for name, d in cv_dirs.items()}
    known = {name: f for name, f in folds.items() if f is not None}
    if len({tuple(sorted(f.items())) for f in known.values()}) > 1:
        notes.append(
            f"the folds differ between {', '.join(known)} (folds.csv): the models were "
            "not tested on the same subjects in each fold"
        )
    return notes


def anova_from_cv(cv_dirs: list[Path], metric: str = "test/accuracy") -> dict:
    """One-way ANOVA of ``metric`` over the folds of each ``lbp cv`` run directory
    (one group per directory, named as in the module docstring). The result of
    :func:`one_way_anova` plus ``metric``, ``dirs`` (group name -> directory) and
    ``notes`` (:func:`comparability_notes`)."""
    cv_dirs = [Path(d) for d in cv_dirs]
    names = [_group_name(d) for d in cv_dirs]
    clash = {n for n in names if names.count(n) > 1}
    names = [f"{n}/{d.name}" if n in clash else n for n, d in zip(names, cv_dirs)]
    if len(set(names)) < len(names):
        names = [str(d) for d in cv_dirs]
    groups = {name: fold_scores(d, metric) for name, d in zip(names, cv_dirs)}
    result = one_way_anova(groups)
    result["metric"] = metric
    result["dirs"] = {name: str(d) for name, d in zip(names, cv_dirs)}
    result["notes"] = comparability_notes(dict(zip(names, cv_dirs)))
    return result


def _rows(result: dict) -> list[dict]:
    rows = [
        {"row": name, "n": g["n"], "mean": g["mean"], "std": g["std"]}
        for name, g in result["groups"].items()
    ]
    dfb, dfw = result["df_between"], result["df_within"]
    ssb, ssw = result["ss_between"], result["ss_within"]
    rows.append(
        {
            "row": "between",
            "df": dfb,
            "SS": ssb,
            "MS": ssb / dfb,
            "F": result["F"],
            "p": result["p"],
        }
    )
    rows.append({"row": "within", "df": dfw, "SS": ssw, "MS": ssw / dfw})
    rows.append({"row": "total", "df": dfb + dfw, "SS": ssb + ssw})
    return rows


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def anova_markdown(result: dict) -> str:
    metric = result.get("metric", "score")
    groups = ["| model | folds | mean | std |", "| --- | ---: | ---: | ---: |"]
    groups += [
        f"| {name} | {g['n']} | {g['mean']:.4f} | {_fmt(g['std'])} |"
        for name, g in result["groups"].items()
    ]
    table = ["| source | df | SS | MS | F | p |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in _rows(result)[len(result["groups"]) :]:
        table.append(
            "| "
            + " | ".join([r["row"]] + [_fmt(r.get(k)) for k in ("df", "SS", "MS", "F", "p")])
            + " |"
        )
    notes = "".join(f"**Not comparable:** {note}.\n\n" for note in result.get("notes", []))
    return (
        f"# One-way ANOVA of {metric} across {len(result['groups'])} models\n\n"
        + notes
        + "\n".join(groups)
        + "\n\n"
        + "\n".join(table)
        + "\n"
    )


def write_anova(result: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``anova.csv`` and ``anova.md`` (see the module docstring) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "anova.csv", out / "anova.md"

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(_rows(result))

    atomic_write(csv_path, write_csv)
    write_text(md_path, anova_markdown(result))
    return csv_path, md_path


def run_anova(
    cv_dirs: list[str | Path], metric: str = "test/accuracy", out: str | Path = "runs/analysis"
) -> dict:
    """``lbp analyze anova``: compute, write and print the table."""
    result = anova_from_cv([Path(d) for d in cv_dirs], metric)
    csv_path, md_path = write_anova(result, out)
    print(md_path.read_text())
    print(f"-> {csv_path}, {md_path}")
    return result
