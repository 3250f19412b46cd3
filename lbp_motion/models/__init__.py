"""Pure torch models (no Lightning, no files): see :mod:`.common` for the convention
and ``docs/models.md`` for the model zoo."""

from .autoencoder import LSTMAutoencoder
from .cnn import CNN1DClassifier
from .common import ModelFactory, SequenceClassifier
from .mil import MultiChannelClassifier
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
    "LSTMAutoencoder",
    "LSTMClassifier",
    "LSTMDNNClassifier",
    "ModelFactory",
    "MultiChannelClassifier",
    "SequenceClassifier",
    "StackedLSTM",
    "TransformerClassifier",
]
