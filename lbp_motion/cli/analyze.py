"""``lbp analyze exercise-correlation|anova``: their command lines; the analyses are in
:mod:`lbp_motion.analysis`."""

from __future__ import annotations

import argparse

from lbp_motion.cli.commands import add_out_dir


def cmd_analyze(argv: list[str]) -> int:
    """``lbp analyze``: dataset and result analyses (exercise-correlation, anova)."""
    parser = argparse.ArgumentParser(
        prog="lbp analyze", description="Analyses of datasets and results."
    )
    sub = parser.add_subparsers(dest="what", required=True)
    corr = sub.add_parser(
        "exercise-correlation",
        help="Spearman correlation of exercise types and labels (PLAAN Table 1)",
    )
    corr.add_argument(
        "root", help="an EmoPain folder (train/ and validation/ or the files themselves)"
    )
    add_out_dir(corr, "output folder", default="runs/analysis", old=("--out",))
    _add_anova_parser(sub)
    args = parser.parse_args(argv)
    from lbp_motion.analysis.anova import run_anova
    from lbp_motion.analysis.exercise_correlation import run_exercise_correlation

    if args.what == "exercise-correlation":
        run_exercise_correlation(args.root, args.out_dir)
    elif args.what == "anova":
        run_anova(args.cv_dirs, args.metric, args.out_dir)
    return 0


def _add_anova_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("anova", help="one-way ANOVA of models' per-fold scores from `lbp cv` runs")
    p.add_argument(
        "cv_dirs",
        nargs="+",
        metavar="CV_DIR",
        help="`lbp cv` run directories (runs/<name>/version_<n>)",
    )
    p.add_argument(
        "--metric",
        default="test/accuracy",
        help="the fold metric to compare (default: test/accuracy)",
    )
    add_out_dir(p, "output folder", default="runs/analysis", old=("--out",))
