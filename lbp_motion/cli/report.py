"""``lbp report``: its command line; :func:`lbp_motion.pipelines.report.write_report` writes it."""

from __future__ import annotations

import argparse

from lbp_motion.cli.commands import add_out_dir


def cmd_report(argv: list[str]) -> int:
    """``lbp report``: an HTML and Markdown report of run directories, with figures."""
    parser = argparse.ArgumentParser(
        prog="lbp report",
        description="Write DIR/report.html (self-contained) and DIR/report.md with PNG figures beside them, "
        "for run directories of lbp fit/test/predict, lbp cv and lbp sweep.",
    )
    parser.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (runs/<name>/version_<n>)"
    )
    add_out_dir(parser, "folder for report.html, report.md and the figures", old=("--out",))
    parser.add_argument("--title", default=None, help="title of the report")
    args = parser.parse_args(argv)
    from lbp_motion.pipelines.report import write_report

    path = write_report(args.run_dirs, args.out_dir, args.title)
    print(f"Report: {path.resolve()}")
    print(f"Markdown: {path.with_suffix('.md').resolve()}")
    return 0
