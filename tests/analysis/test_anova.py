import csv
import json
import math

import pytest

from lbp_motion.analysis.anova import anova_from_cv, one_way_anova, write_anova
from lbp_motion.cli import main
from lbp_motion.errors import LbpError


def _hand_f(groups):
    values = [v for g in groups for v in g]
    grand = sum(values) / len(values)
    means = [sum(g) / len(g) for g in groups]
    ss_between = sum(len(g) * (m - grand) ** 2 for g, m in zip(groups, means))
    ss_within = sum((v - m) ** 2 for g, m in zip(groups, means) for v in g)
    df_b, df_w = len(groups) - 1, len(values) - len(groups)
    return (ss_between / df_b) / (ss_within / df_w), df_b, df_w


def test_one_way_anova_matches_the_formula():
    groups = {"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0, 5.0], "c": [2.0, 2.5, 4.0]}
    f, df_b, df_w = _hand_f(list(groups.values()))
    res = one_way_anova(groups)
    assert res["F"] == pytest.approx(f) and (res["df_between"], res["df_within"]) == (
        df_b,
        df_w,
    ) == (2, 7)
    assert 0 < res["p"] < 0.05
    assert res["groups"]["b"]["n"] == 4 and res["groups"]["b"]["mean"] == pytest.approx(5.0)
    assert res["groups"]["a"]["std"] == pytest.approx(1.0)  # sample std, ddof=1
    # by hand: means 2, 5, 17/6; grand 34.5/10
    assert res["ss_between"] + res["ss_within"] == pytest.approx(
        sum((v - 3.45) ** 2 for g in groups.values() for v in g)
    )


def test_one_way_anova_errors_and_degenerate_input():
    with pytest.raises(LbpError, match="at least two groups"):
        one_way_anova({"a": [1.0, 2.0]})
    with pytest.raises(LbpError, match="'b' has no observations"):
        one_way_anova({"a": [1.0, 2.0], "b": []})
    with pytest.raises(LbpError, match="more observations than groups"):
        one_way_anova({"a": [1.0], "b": [2.0]})
    res = one_way_anova({"a": [1.0, 1.0], "b": [2.0, 2.0]})  # no within-group variance
    assert math.isnan(res["F"]) and math.isnan(res["p"])


def _fake_cv(root, name, accuracies, version=0, extra=None):
    run = root / name / f"version_{version}"
    for i, acc in enumerate(accuracies):
        (run / f"fold_{i}").mkdir(parents=True)
        metrics = {"test/accuracy": acc, "test/mcc": acc / 2, **(extra or {})}
        (run / f"fold_{i}" / "metrics.json").write_text(json.dumps(metrics))
    (run / "summary.json").write_text(json.dumps({"folds": len(accuracies)}))
    return run


def test_anova_from_cv_reads_folds_and_names_groups(tmp_path):
    a = _fake_cv(tmp_path, "lstm", [0.6, 0.62, 0.58])
    b = _fake_cv(tmp_path, "cnn", [0.5, 0.52, 0.49, 0.51])
    res = anova_from_cv([a, b])
    f, _, _ = _hand_f([[0.6, 0.62, 0.58], [0.5, 0.52, 0.49, 0.51]])
    assert list(res["groups"]) == ["lstm", "cnn"] and res["F"] == pytest.approx(f)
    assert res["groups"]["lstm"]["values"] == [0.6, 0.62, 0.58] and res["metric"] == "test/accuracy"
    assert res["dirs"]["cnn"] == str(b)
    mcc = anova_from_cv([a, b], metric="test/mcc")
    assert mcc["groups"]["cnn"]["mean"] == pytest.approx(0.2525)
    # two versions of one model are told apart
    a1 = _fake_cv(tmp_path, "lstm", [0.7, 0.71], version=1)
    assert list(anova_from_cv([a, a1])["groups"]) == ["lstm/version_0", "lstm/version_1"]


def test_anova_from_cv_errors_name_the_directory(tmp_path):
    a = _fake_cv(tmp_path, "lstm", [0.6, 0.62])
    empty = tmp_path / "empty" / "version_0"
    empty.mkdir(parents=True)
    with pytest.raises(LbpError, match=f"{empty}: no fold_"):
        anova_from_cv([a, empty])
    with pytest.raises(
        LbpError, match="fold_0/metrics.json: no metric 'test/f1'.*test/accuracy, test/mcc"
    ):
        anova_from_cv([a, a], metric="test/f1")
    with pytest.raises(LbpError, match="folder not found"):
        anova_from_cv([a, tmp_path / "missing"])


def _write_folds(run, assignment):
    (run / "folds.csv").write_text(
        "subject,fold\n" + "".join(f"{s},{f}\n" for s, f in assignment.items())
    )


def test_anova_notes_models_that_are_not_comparable(tmp_path):
    three = {"test/f1/no_pain": 0.8, "test/f1/low": 0.1, "test/f1/high": 0.3}
    a = _fake_cv(tmp_path, "lstm_dnn", [0.6, 0.62], extra=three)
    b = _fake_cv(tmp_path, "attention", [0.5, 0.52], extra=three)
    detector = _fake_cv(
        tmp_path, "anomaly", [0.7, 0.66], extra={"test/f1/no_pain": 0.8, "test/f1/pain": 0.4}
    )
    for run in (a, b, detector):
        _write_folds(run, {"P1": 0, "P2": 1, "P3": 0})
    assert anova_from_cv([a, b])["notes"] == []
    reordered = _fake_cv(tmp_path, "lstm", [0.5, 0.51], extra=dict(reversed(three.items())))
    _write_folds(reordered, {"P1": 0, "P2": 1, "P3": 0})
    assert anova_from_cv([a, reordered])["notes"] == []  # the same classes, keys in another order
    res = anova_from_cv([a, b, detector])
    assert len(res["notes"]) == 1
    assert "different classes" in res["notes"][0]
    assert "anomaly: no_pain, pain" in res["notes"][0]
    assert "lstm_dnn: no_pain, low, high" in res["notes"][0]
    _, md = write_anova(res, tmp_path / "w")
    assert "**Not comparable:** the models predict different classes" in md.read_text()
    # the same classes, other folds: the subjects were split differently
    _write_folds(b, {"P1": 1, "P2": 0, "P3": 0})
    (note,) = anova_from_cv([a, b])["notes"]
    assert "folds differ between lstm_dnn, attention" in note


@pytest.mark.e2e
def test_write_anova_and_cli(tmp_path, capsys):
    a = _fake_cv(tmp_path, "lstm", [0.6, 0.62, 0.58])
    b = _fake_cv(tmp_path, "cnn", [0.5, 0.52, 0.49])
    csv_path, md_path = write_anova(anova_from_cv([a, b]), tmp_path / "w")
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["row"] for r in rows] == ["lstm", "cnn", "between", "within", "total"]
    assert "| lstm | 3 | 0.6000 |" in md_path.read_text()
    assert "Not comparable" not in md_path.read_text()

    out = tmp_path / "out"
    assert (
        main(["analyze", "anova", str(a), str(b), "--metric", "test/mcc", "--out_dir", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "One-way ANOVA of test/mcc across 2 models" in printed and "| between | 1 |" in printed
    rows = {r["row"]: r for r in csv.DictReader(open(out / "anova.csv"))}
    f, _, _ = _hand_f([[0.3, 0.31, 0.29], [0.25, 0.26, 0.245]])
    assert float(rows["between"]["F"]) == pytest.approx(f) and rows["within"]["df"] == "4"
    assert (out / "anova.md").is_file()
    assert main(["analyze", "anova", str(a), str(tmp_path / "nope")]) == 2
    assert "folder not found" in capsys.readouterr().err
