"""`lbp report`: the numbers in the report are those of metrics.json, and in a real
headless browser every figure loads and the numbers show."""

from __future__ import annotations

import csv
import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lbp_motion.cli import main
from lbp_motion.pipelines.report import fmt, split_metrics, write_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images].map(i => ({src: i.getAttribute("src"), width: i.naturalWidth}));
  const probe = document.createElement("pre");
  probe.id = "lbp-probe";
  probe.textContent = JSON.stringify({imgs, text: document.body.innerText});
  document.body.appendChild(probe);
});
</script>"""


def find_browser() -> str | None:
    """A Chromium-family binary: $LBP_BROWSER, else the first of BROWSERS on PATH."""
    if os.environ.get("LBP_BROWSER"):
        return os.environ["LBP_BROWSER"]
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def browser_probe(report: Path, tmp_path: Path) -> dict:
    """Open ``report`` in headless Chromium; returns ``{"imgs": [{src, width}], "text"}``
    as the page shows them once loaded (a copy of the page with a probe script appended,
    beside the original so that relative figure paths resolve)."""
    browser = find_browser()
    if browser is None:
        pytest.skip(
            "no Chromium/Chrome binary found (.ci/run installs Debian's chromium; or set LBP_BROWSER)"
        )
    probe = report.with_name("_probe_" + report.name)
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=15000",
        "--dump-dom",
        probe.resolve().as_uri(),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    match = re.search(r'<pre id="lbp-probe">(.*?)</pre>', done.stdout, re.S)
    assert match, (
        f"the browser gave no probe output (exit {done.returncode}): {done.stderr[-2000:]}"
    )
    return json.loads(html.unescape(match.group(1)))


class _Cells(HTMLParser):
    """Collects (text, data-value) of every table cell and the src of every <img>."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[str, float | None]] = []
        self.imgs: list[str] = []
        self.links: list[str] = []
        self._cell: list | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("td", "th"):
            self._cell = ["", float(a["data-value"]) if "data-value" in a else None]
        if tag == "img":
            self.imgs.append(a["src"])
        for key in ("src", "href"):
            if key in a:
                self.links.append(a[key])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append((self._cell[0].strip(), self._cell[1]))
            self._cell = None


def parse_report(path: Path) -> _Cells:
    p = _Cells()
    p.feed(path.read_text())
    return p


def numeric_metrics(metrics: dict) -> dict[str, float]:
    overall, per_class = split_metrics(metrics)
    out = {f"{s}/{m}": v for s, ms in overall.items() for m, v in ms.items()}
    out.update(
        {
            f"{s}/{m}/{c}": v
            for s, cs in per_class.items()
            for c, ms in cs.items()
            for m, v in ms.items()
        }
    )
    return {k: v for k, v in out.items() if v is not None}


@pytest.fixture(scope="module")
def fit_and_predict(tiny_tug, tmp_path_factory) -> tuple[Path, Path]:
    """A tiny real fit (metrics.json, config.yaml, confusion, metrics.csv) and a predict
    run of its best checkpoint on the labelled test subjects (predictions.csv)."""
    from tests.conftest import TINY_ARGS

    out = tmp_path_factory.mktemp("report_runs")
    common = [
        "--config",
        "experiments/tug/attention_small.yaml",
        *TINY_ARGS,
        "--data.root",
        str(tiny_tug),
        "--run.out_dir",
        str(out),
    ]
    assert main(["fit", *common, "--run.name", "fit"]) == 0
    fit = out / "fit" / "version_0"
    best = json.loads((fit / "metrics.json").read_text())["best_checkpoint"]
    assert (
        main(
            [
                "predict",
                *common,
                "--run.name",
                "predict",
                "--ckpt_path",
                best,
                "--data.predict_split",
                "test",
            ]
        )
        == 0
    )
    return fit, out / "predict" / "version_0"


def fake_federated_run(root: Path) -> Path:
    """The files of a federated fit as FedAvgStrategy and RunSummary write them."""
    run = root / "fed" / "version_0"
    run.mkdir(parents=True)
    metrics = {
        "schema_version": 1,
        "best_epoch": 2,
        "epochs_trained": 3,
        "monitor": "val/f1_macro",
        "val/f1_macro": 0.61234567,
        "val/accuracy": 0.7,
        "final_val/f1_macro": 0.59,
        "test/accuracy": 0.6543,
        "test/f1/a": 0.5,
        "test/f1/b": 0.75,
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    with open(run / "rounds.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "round",
                "client_0/n",
                "client_0/train_loss",
                "client_1/n",
                "client_1/train_loss",
                "clients",
                "failed",
                "failed_clients",
                "val/accuracy",
                "val/f1_macro",
            ]
        )
        for r in range(3):
            w.writerow(
                [r, 10, 1.0 - 0.1 * r, 12, 1.1 - 0.15 * r, 2, "", 0, 0.5 + 0.1 * r, 0.4 + 0.1 * r]
            )
    (run / "config.yaml").write_text(
        "trainer:\n  strategy:\n    class_path: lbp_motion.federated.FedAvgStrategy\n"
    )
    return run


def fake_cv_run(root: Path) -> Path:
    """The files of an `lbp cv` run directory (summary.json, folds.csv, fold_<i>/)."""
    run = root / "x-cv" / "version_0"
    run.mkdir(parents=True)
    (run / "folds.csv").write_text("subject,fold\ns1,0\ns2,1\n")
    for i, (acc, preds) in enumerate(
        [(0.75, [("a", 0.8), ("b", 0.3)]), (0.5, [("a", 0.4), ("b", 0.2)])]
    ):
        fold = run / f"fold_{i}"
        fold.mkdir()
        (fold / "metrics.json").write_text(
            json.dumps({"test/accuracy": acc, "test/f1_macro": acc - 0.1234})
        )
        with open(fold / "predictions.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["recording", "start", "predicted", "label", "p_a", "p_b"])
            for j, (label, pa) in enumerate(preds):
                w.writerow([f"r{i}", j, "a" if pa > 0.5 else "b", label, pa, 1 - pa])
    summary = {
        "folds": 2,
        "folds_spec": "2",
        "test/accuracy_mean": 0.625,
        "test/accuracy_std": 0.1767767,
        "test/f1_macro_mean": 0.5016,
        "test/f1_macro_std": 0.1767767,
        "pooled/accuracy": 0.75,
    }
    (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.mark.e2e
def test_report_numbers_equal_metrics_json(fit_and_predict, tmp_path):
    fit, predict = fit_and_predict
    report = write_report([fit, predict], tmp_path / "report")
    metrics = json.loads((fit / "metrics.json").read_text())
    expected = numeric_metrics(metrics)
    assert len(expected) > 30 and any(k.count("/") == 2 for k in expected)  # per-class values too
    parsed = parse_report(report)
    values = [v for _, v in parsed.cells if v is not None]
    for key, value in expected.items():
        assert value in values, key  # the exact number, in a data-value attribute
        assert (fmt(value), value) in parsed.cells, key  # shown rounded to 4 decimals
    md = report.with_suffix(".md").read_text()
    assert all(fmt(v) in md for v in expected.values())
    # confusion matrix counts as in confusion_test.csv; the configuration as in config.yaml
    rows = list(csv.reader(open(fit / "confusion_test.csv")))
    counts = [int(v) for r in rows[1:] for v in r[1:]]
    assert sum(counts) > 0 and all((str(c), float(c)) in parsed.cells for c in counts)
    assert "class_path: lbp_motion.tasks.ClassificationTask" in (fit / "config.yaml").read_text()
    assert "class_path: lbp_motion.tasks.ClassificationTask" in report.read_text()
    # figures: PNG files beside the report, referenced relatively; nothing from the network
    assert parsed.imgs and all(
        (report.parent / src).is_file() and "/" not in src for src in parsed.imgs
    )
    assert not any(link.startswith(("http:", "https:", "//")) for link in parsed.links)
    assert any("confusion_test" in s for s in parsed.imgs) and any("roc" in s for s in parsed.imgs)


@pytest.mark.e2e
def test_federated_and_cross_validation_sections(tmp_path):
    fed, cv = fake_federated_run(tmp_path), fake_cv_run(tmp_path)
    report = write_report([fed, cv], tmp_path / "out")
    parsed = parse_report(report)
    page = report.read_text()
    assert "Runs compared" in page  # two runs with metrics: compared side by side
    assert "Federated: validation per round" in page and "client training loss per round" in page
    assert ("0.6123", 0.61234567) in parsed.cells  # val/f1_macro from metrics.json
    assert ("0.6000", 0.6) in parsed.cells  # round 1's val/accuracy from rounds.csv
    assert (
        "Per fold (test)" in page
        and ("0.7500", 0.75) in parsed.cells
        and ("0.3766", 0.3766) in parsed.cells
    )
    assert ("0.6250", 0.625) in parsed.cells and ("0.1768", 0.1767767) in parsed.cells  # mean, std
    assert "Pooled confusion matrix" in page and "ROC curves (pooled test windows)" in page
    assert len(parsed.imgs) == 4 and all((report.parent / s).is_file() for s in parsed.imgs)


@pytest.mark.e2e
def test_report_in_a_headless_browser(fit_and_predict, tmp_path):
    fit, predict = fit_and_predict
    report = write_report(
        [fit, predict, fake_federated_run(tmp_path), fake_cv_run(tmp_path)], tmp_path / "out"
    )
    shown = browser_probe(report, tmp_path)
    imgs = shown["imgs"]
    assert len(imgs) == len(parse_report(report).imgs) == 7
    broken = [i["src"] for i in imgs if not i["width"] > 0]
    assert not broken, f"figures that did not load: {broken}"
    text = shown["text"]
    for key, value in numeric_metrics(json.loads((fit / "metrics.json").read_text())).items():
        assert fmt(value) in text, key
    assert "0.6123" in text and "0.6250" in text  # federated and cross-validation numbers


@pytest.mark.e2e
def test_lbp_report_command_and_errors(fit_and_predict, tmp_path, capsys):
    fit, _ = fit_and_predict
    assert (
        main(["report", str(fit.parent), "--out_dir", str(tmp_path / "r")]) == 0
    )  # runs/<name>: its latest version
    assert "Report: " in capsys.readouterr().out and (tmp_path / "r" / "report.md").is_file()
    assert main(["report", str(tmp_path / "missing"), "--out_dir", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lbp: error:") and "no such run directory" in err and "\n" not in err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out_dir", str(tmp_path / "r3")]) == 2
    assert "not a run directory" in capsys.readouterr().err


@pytest.mark.e2e
def test_lbp_report_takes_the_old_out_for_one_release_with_a_warning(
    fit_and_predict, tmp_path, capsys
):
    fit, _ = fit_and_predict
    assert main(["report", str(fit), "--out", str(tmp_path / "old")]) == 0
    assert (tmp_path / "old" / "report.md").is_file()
    err = capsys.readouterr().err.splitlines()
    assert (
        "lbp: warning: --out is deprecated; use --out_dir (the old spelling goes in the next release)"
        in err
    )


def test_per_class_rows_follow_the_tasks_class_order():
    from lbp_motion.pipelines.report import metrics_tables

    metrics = {"test/f1/high": 0.9, "test/f1/low": 0.7, "test/f1/medium": 0.6, "test/accuracy": 0.8}
    per_class = [
        t
        for t in metrics_tables(metrics, classes=["low", "medium", "high"])
        if t.title.startswith("Per class")
    ]
    assert [row[0].text for row in per_class[0].rows] == ["low", "medium", "high"]
    by_name = [t for t in metrics_tables(metrics) if t.title.startswith("Per class")]
    assert [row[0].text for row in by_name[0].rows] == ["high", "low", "medium"]


def _write_metrics_csv(run: Path, rows: list[dict]) -> None:
    run.mkdir(parents=True)
    with open(run / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["epoch", "step", "train/loss", "val/f1_macro"])
        writer.writeheader()
        writer.writerows(rows)


def test_the_curves_of_a_resumed_fit_start_at_its_first_epoch(tmp_path):
    """A fit resumed from version_0's last.ckpt writes its epochs into version_1; its
    validation curve shows version_0's epochs before the resume, not the epoch it
    was interrupted in (version_0's partial epoch 2 is replaced by version_1's)."""
    from lbp_motion.pipelines.report_figures import Figures, epoch_curves, epoch_rows
    from lbp_motion.pipelines.report_parts import Section

    first, second = tmp_path / "fit" / "version_0", tmp_path / "fit" / "version_1"
    _write_metrics_csv(
        first,
        [
            {"epoch": 0, "step": 4, "val/f1_macro": 0.1},
            {"epoch": 1, "step": 9, "val/f1_macro": 0.2},
            {"epoch": 2, "step": 11, "train/loss": 0.9},  # interrupted in epoch 2
        ],
    )
    _write_metrics_csv(
        second,
        [
            {"epoch": 2, "step": 14, "val/f1_macro": 0.3},
            {"epoch": 3, "step": 19, "val/f1_macro": 0.4},
        ],
    )
    (second / "config.yaml").write_text(f"ckpt_path: {first}/checkpoints/last.ckpt\n")

    rows, earlier = epoch_rows(second)
    assert [(int(r["epoch"]), r["val/f1_macro"]) for r in rows] == [
        (0, "0.1"),
        (1, "0.2"),
        (2, "0.3"),
        (3, "0.4"),
    ]
    assert earlier == [first]
    assert [r["epoch"] for r in epoch_rows(first)[0]] == ["0", "1", "2"]  # no resume: its own rows
    (first / "config.yaml").write_text(f"ckpt_path: {second}/checkpoints/last.ckpt\n")  # a loop
    assert len(epoch_rows(second)[0]) == 4

    sec = Section(name="fit", path=str(second), kind="fit")
    (tmp_path / "report").mkdir()
    epoch_curves(sec, second, Figures(tmp_path / "report"), "fit")
    (figure,) = sec.figures
    assert str(first) in figure.caption and (tmp_path / "report" / figure.file).is_file()
