"""Pure torch models (no Lightning, no files): see :mod:`.common` for the convention
and ``docs/models.md`` for the model zoo."""

from lbp_motion.models.autoencoder import LSTMAutoencoder
from lbp_motion.models.cnn import CNN1DClassifier
from lbp_motion.models.common import ModelFactory, SequenceClassifier
from lbp_motion.models.mil import MultiChannelClassifier
from lbp_motion.models.recurrent import (
    AttentionLSTMClassifier,
    BiLSTMClassifier,
    LSTMClassifier,
    LSTMDNNClassifier,
    StackedLSTM,
)
from lbp_motion.models.statistics import WindowStatisticsClassifier, window_statistics
from lbp_motion.models.transformer import TransformerClassifier

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
    "WindowStatisticsClassifier",
    "window_statistics",
]
