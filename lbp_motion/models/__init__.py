"""Pure torch models (no Lightning, no files): see :mod:`.common` for the convention
and ``docs/models.md`` for the model zoo."""

from .cnn import CNN1DClassifier
from .common import SequenceClassifier
from .recurrent import (
    AttentionLSTMClassifier,
    BiLSTMClassifier,
    LSTMClassifier,
    LSTMDNNClassifier,
    StackedLSTM,
)
from .transformer import TransformerClassifier

__all__ = [
    "AttentionLSTMClassifier",
    "BiLSTMClassifier",
    "CNN1DClassifier",
    "LSTMClassifier",
    "LSTMDNNClassifier",
    "SequenceClassifier",
    "StackedLSTM",
    "TransformerClassifier",
]
