"""Pure torch models (no Lightning, no files): see :mod:`.common` for the convention."""

from .cnn import CNN1DClassifier
from .common import SequenceClassifier
from .recurrent import LSTMClassifier, StackedLSTM
from .transformer import TransformerClassifier

__all__ = [
    "CNN1DClassifier",
    "LSTMClassifier",
    "SequenceClassifier",
    "StackedLSTM",
    "TransformerClassifier",
]
