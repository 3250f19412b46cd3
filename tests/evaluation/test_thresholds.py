import matplotlib.figure
import numpy as np
import pytest
import torch

from lbp_motion.errors import ConfigError
from lbp_motion.evaluation.figures import plt, roc_figure, score_boxplot_figure
from lbp_motion.evaluation.thresholds import (
    f1_optimal_threshold,
    percentile_threshold,
    select_threshold,
    youden_threshold,
)

SCORES = [0.1, 0.2, 0.3, 0.8, 0.9]
LABELS = [0, 0, 0, 1, 1]


def test_separable_scores_give_the_first_anomalous_score():
    assert f1_optimal_threshold(SCORES, LABELS) == pytest.approx(0.8)
    assert youden_threshold(SCORES, LABELS) == pytest.approx(0.8)
    assert select_threshold(SCORES, LABELS, "f1") == pytest.approx(0.8)
    assert select_threshold(SCORES, LABELS, "youden") == pytest.approx(0.8)


def test_percentile_of_normal_scores_only():
    assert percentile_threshold([0.1, 0.2, 0.3], q=50) == pytest.approx(0.2)
    assert select_threshold(SCORES, LABELS, "percentile", q=50) == pytest.approx(0.2)
    # linear interpolation: q=75 of [0.1, 0.2, 0.3] lies half way between 0.2 and 0.3
    assert select_threshold(SCORES, LABELS, "percentile", q=75) == pytest.approx(0.25)
    assert percentile_threshold([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(4.8)  # default q=95


def test_f1_overlapping_scores_by_hand():
    # scores 0.1 0.4 0.5 0.6 0.7 with labels 0 1 0 1 1
    # t=0.1: tp3 fp2 fn0 -> 6/8=.75; t=0.4: tp3 fp1 -> 6/7=.857; t=0.5: tp2 fp1 fn1 -> 4/6;
    # t=0.6: tp2 fp0 fn1 -> 4/5=.8; t=0.7: tp1 fn2 -> 2/4
    assert f1_optimal_threshold([0.7, 0.1, 0.5, 0.4, 0.6], [1, 0, 0, 1, 1]) == pytest.approx(0.4)


def test_f1_tie_takes_the_smallest_threshold():
    # scores 0.1 0.2 0.25 0.3, labels 0 0 1 1:
    # t=0.1: tp2 fp2 fn0 -> 4/6; t=0.2: tp2 fp1 -> 4/5; t=0.25: tp2 fp0 -> 1; t=0.3: tp1 fn1 -> 2/3
    assert f1_optimal_threshold([0.1, 0.2, 0.3, 0.25], [0, 0, 1, 1]) == pytest.approx(0.25)
    # scores 0.1 0.2, labels 1 0: t=0.1: tp1 fp1 -> 2/3; t=0.2: tp0 -> 0  => 0.1
    assert f1_optimal_threshold([0.1, 0.2], [1, 0]) == pytest.approx(0.1)
    # genuine tie at F1 2/3: scores 0.1 0.2 0.3 0.4, labels 1 0 0 1:
    # t=0.1: tp2 fp2 fn0 -> 4/6; t=0.2: tp1 fp2 fn1 -> 2/5; t=0.3: tp1 fp1 fn1 -> 2/4; t=0.4: tp1 fn1 -> 2/3
    assert f1_optimal_threshold([0.1, 0.2, 0.3, 0.4], [1, 0, 0, 1]) == pytest.approx(0.1)


def test_youden_by_hand_and_tie_takes_the_largest():
    # scores 0.1 0.4 0.5 0.6 0.7, labels 0 1 0 1 1 (2 normal, 3 anomalous)
    # t=0.7: tpr 1/3 fpr 0 -> .333; t=0.6: 2/3, 0 -> .667; t=0.5: 2/3, 1/2 -> .167;
    # t=0.4: 1, 1/2 -> .5; t=0.1: 1, 1 -> 0
    assert youden_threshold([0.7, 0.1, 0.5, 0.4, 0.6], [1, 0, 0, 1, 1]) == pytest.approx(0.6)
    # a tie: scores 0.05 0.1 0.2 0.4, labels 0 1 0 1:
    # t=0.4: tpr .5 fpr 0 -> .5; t=0.2: .5, .5 -> 0; t=0.1: 1, .5 -> .5; t=0.05: 1, 1 -> 0  => 0.4
    assert youden_threshold([0.1, 0.2, 0.4, 0.05], [1, 0, 1, 0]) == pytest.approx(0.4)
    # the same data with F1: t=0.1: tp2 fp1 -> 4/5 beats t=0.4: tp1 fn1 -> 2/3, so the rules differ
    assert f1_optimal_threshold([0.1, 0.2, 0.4, 0.05], [1, 0, 1, 0]) == pytest.approx(0.1)


def test_accepts_tensors_and_numpy():
    assert select_threshold(torch.tensor(SCORES), torch.tensor(LABELS), "f1") == pytest.approx(0.8)
    assert select_threshold(np.array(SCORES), np.array(LABELS), "youden") == pytest.approx(0.8)


@pytest.mark.parametrize("rule", ["f1", "youden"])
def test_one_class_labels_are_refused(rule):
    with pytest.raises(ConfigError, match="needs both normal"):
        select_threshold(SCORES, [0] * 5, rule)
    with pytest.raises(ValueError, match="all 5 are anomalous"):
        select_threshold(SCORES, [1] * 5, rule)


def test_errors():
    with pytest.raises(
        ConfigError, match="unknown threshold rule 'median'.*percentile, f1, youden"
    ):
        select_threshold(SCORES, LABELS, "median")
    with pytest.raises(ConfigError, match="no.*normal|there are none"):
        select_threshold(SCORES, [1] * 5, "percentile")
    with pytest.raises(ConfigError, match="there are none"):
        percentile_threshold([])
    with pytest.raises(ConfigError, match=r"\[0, 100\]"):
        percentile_threshold([0.1], q=101)
    with pytest.raises(ConfigError, match="5 scores but 4 labels"):
        select_threshold(SCORES, LABELS[:4], "f1")
    with pytest.raises(ConfigError, match="labels must be 0"):
        select_threshold(SCORES, [0, 0, 2, 1, 1], "youden")
    with pytest.raises(ConfigError, match="NaN"):
        f1_optimal_threshold([0.1, float("nan")], [0, 1])


def test_roc_figure_lines_and_png(tmp_path):
    fig = roc_figure(
        {"loss": (SCORES, LABELS), "reconstruction": ([0.7, 0.1, 0.5, 0.4, 0.6], [1, 0, 0, 1, 1])},
        title="ROC",
    )
    assert isinstance(fig, matplotlib.figure.Figure)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3  # two curves and the chance diagonal
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == "loss (AUC = 1.000)" and legend[1] == "reconstruction (AUC = 0.833)"
    fig.savefig(tmp_path / "roc.png")
    plt.close(fig)
    assert (tmp_path / "roc.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="'x' needs both"):
        roc_figure({"x": (SCORES, [0] * 5)})


def test_score_boxplot_two_boxes_and_threshold(tmp_path):
    fig = score_boxplot_figure(SCORES, LABELS, threshold=0.8, title="scores")
    assert isinstance(fig, matplotlib.figure.Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["normal (n=3)", "anomalous (n=2)"]
    threshold_lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("threshold")]
    assert len(threshold_lines) == 1 and list(threshold_lines[0].get_ydata()) == [0.8, 0.8]
    # per box: the box outline, the median, 2 whiskers, 2 caps and the fliers; plus the threshold
    assert len(ax.get_lines()) == 2 * 7 + 1
    medians = sorted(
        ln.get_ydata()[0]
        for ln in ax.get_lines()
        if len(ln.get_ydata()) == 2
        and ln not in threshold_lines
        and ln.get_xdata()[0] != ln.get_xdata()[1]
        and ln.get_ydata()[0] == ln.get_ydata()[1]
    )
    assert pytest.approx(0.2) in medians and pytest.approx(0.85) in medians
    fig.savefig(tmp_path / "box.png")
    plt.close(fig)
    assert (tmp_path / "box.png").stat().st_size > 1000
