"""Files -> tensors: formats, layouts, normalisation, windows, splits, DataModules."""

from .base import MotionDataModule
from .emopain import EmoPainDataModule as EmoPainDataModule  # re-export
from .format import (
    DataFormatError,
    LabelRow,
    Recording,
    read_labels,
    read_recording,
    write_labels,
    write_recording,
)
from .layouts import COCO17, Layout, get_layout
from .tug import PoseWindowDataset, TUGDataModule

__all__ = [
    "COCO17",
    "DataFormatError",
    "LabelRow",
    "Layout",
    "MotionDataModule",
    "PoseWindowDataset",
    "Recording",
    "TUGDataModule",
    "get_layout",
    "read_labels",
    "read_recording",
    "write_labels",
    "write_recording",
]
