"""Evaluation beside the model: simple baselines and subject-bootstrap intervals (``lbp cv``).

* :mod:`.baselines`: a majority-class baseline and a window-statistics logistic
  regression, fitted on a fold's training windows, predicting its test windows, with
  rows in the form of ``predictions.csv``;
* :mod:`.bootstrap`: 95% intervals of pooled metrics by resampling subjects (not
  windows), and paired differences model - baseline on the same resampled subjects.

Both work on plain rows and tensors: no Trainer is needed.
"""

from .bootstrap import METRICS, SubjectBootstrap, chance_metrics, confusion_metrics

__all__ = ["METRICS", "SubjectBootstrap", "chance_metrics", "confusion_metrics"]
