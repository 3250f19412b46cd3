"""``lbp cv``: its command line; :func:`lbp_motion.pipelines.cv.run_cv` runs it."""

from __future__ import annotations

import argparse

from lbp_motion.cli.commands import add_config, add_out_dir


def cmd_cv(argv: list[str]) -> int:
    """``lbp cv``: cross-validate a config by subject (leave-one-subject-out or K folds)."""
    parser = argparse.ArgumentParser(
        prog="lbp cv",
        description="Cross-validation by subject. Options not listed here (e.g. --trainer.max_epochs 5) "
        "are passed to every fold's `lbp fit`.",
    )
    add_config(parser)
    parser.add_argument(
        "--folds", default="loso", help="'loso' or a number of folds K (default: loso)"
    )
    parser.add_argument(
        "--val_fraction",
        type=float,
        default=None,
        help="share of each fold's training subjects drawn for validation "
        "(default: the config's data.val_fraction, 0.2 unless set; at least one subject)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the folds and the inner splits"
    )
    add_out_dir(parser, "parent of the cv run directory", default="runs")
    parser.add_argument("--name", default=None, help="default: <config stem>-cv")
    parser.add_argument("--resume", default=None, help="an interrupted cv run directory to finish")
    parser.add_argument(
        "--baselines",
        default="all",
        help="'all' (default): fit the majority-class, window-statistics and recording-statistics "
        "baselines on the same folds and windows; 'none': skip them",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="resamples of the subject bootstrap of the 95%% intervals (default: 1000)",
    )
    args, overrides = parser.parse_known_args(argv)
    if args.folds != "loso" and not args.folds.isdigit():
        parser.error(f"--folds {args.folds!r}: expected 'loso' or a number of folds")
    folds = args.folds if args.folds == "loso" else int(args.folds)
    config_args = [a for c in args.config for a in ("--config", c)] + overrides
    from lbp_motion.pipelines.cv import run_cv

    run = run_cv(
        config_args,
        folds=folds,
        val_fraction=args.val_fraction,
        seed=args.seed,
        out_dir=args.out_dir,
        name=args.name,
        resume=args.resume,
        baselines=args.baselines,
        n_boot=args.bootstrap,
    )
    print((run / "summary.md").read_text())
    print(f"Results: {run.resolve()}")
    return 0
