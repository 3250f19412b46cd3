"""Evaluation shared by every task and by ``lbp cv``: nothing here needs a Trainer.

* :mod:`.metrics`: classification metrics (torchmetrics) and their flat names in
  ``metrics.json``; window probabilities combined per recording;
* :mod:`.thresholds`: threshold rules for anomaly scores;
* :mod:`.decisions`: metrics and figures of decisions made at the end of an epoch
  (thresholds, hierarchies);
* :mod:`.figures`: confusion-matrix figures;
* :mod:`.results`: run directories, ``metrics.json`` and prediction files;
* :mod:`.baselines`: a majority-class baseline and a window-statistics logistic
  regression on a fold's windows, with rows in the form of ``predictions.csv``;
* :mod:`.bootstrap`: 95% intervals by resampling subjects (not windows), and paired
  differences model - baseline on the same resampled subjects;
* :mod:`.tables`: the results tables of docs/results.md.
"""

from lbp_motion.evaluation.bootstrap import (
    METRICS,
    SubjectBootstrap,
    chance_metrics,
    confusion_metrics,
)

__all__ = ["METRICS", "SubjectBootstrap", "chance_metrics", "confusion_metrics"]
