import csv

import numpy as np
import pytest
from scipy.stats import spearmanr

from lbp_motion.analysis.exercise_correlation import exercise_label_correlation
from lbp_motion.cli import main


def test_correlation_of_indicators_matches_scipy_and_skips_unlabelled_pain():
    exercise = np.array([3, 3, 3, 8, 8, 8, 0, 0])
    pain = np.array([2, 2, -1, 0, 0, 0, 1, -1])
    protective = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    rows = {
        (r["exercise"], r["label"], r["class"]): r
        for r in exercise_label_correlation(exercise, pain, protective)
    }
    keep = pain >= 0
    rho, p = spearmanr((exercise[keep] == 3).astype(float), (pain[keep] == 2).astype(float))
    bend_high = rows[("bend", "pain", "high")]
    assert (
        bend_high["rho"] == pytest.approx(rho)
        and bend_high["p"] == pytest.approx(p)
        and bend_high["frames"] == 6
    )
    assert rows[("bend", "protective", "protective")]["rho"] > 0.5
    assert rows[("walking", "protective", "protective")]["rho"] < 0
    assert np.isnan(
        rows[("sitting_still", "pain", "low")]["rho"]
    )  # exercise absent: no correlation


@pytest.mark.e2e
def test_lbp_analyze_writes_csv_and_heatmap(tmp_path, capsys):
    from lbp_motion.datasets.synthetic import generate_emopain_dataset

    root = generate_emopain_dataset(
        tmp_path / "ep",
        num_train_patients=2,
        num_train_controls=1,
        num_val_patients=1,
        num_val_controls=1,
        frames_per_file=600,
        seed=1,
    )
    assert (
        main(["analyze", "exercise-correlation", str(root), "--out_dir", str(tmp_path / "out")])
        == 0
    )
    rows = list(csv.DictReader(open(tmp_path / "out" / "exercise_correlation.csv")))
    assert len(rows) == 9 * 3 + 9 * 2
    assert (tmp_path / "out" / "exercise_correlation.png").stat().st_size > 1000
    assert main(["analyze", "exercise-correlation", str(tmp_path / "none")]) == 2
    assert "folder not found" in capsys.readouterr().err
