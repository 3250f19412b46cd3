"""Files -> arrays: the recording and label formats, skeleton layouts, normalisation,
windows, subject splits and folds, and the synthetic data generators.

Nothing here imports Lightning: a test or a notebook reads a folder with these
functions alone. The DataModules that put them together are in
:mod:`lbp_motion.datamodules`.
"""

from lbp_motion.datasets.format import (
    DataFormatError,
    LabelRow,
    Recording,
    read_labels,
    read_recording,
    write_labels,
    write_recording,
)
from lbp_motion.datasets.layouts import COCO17, Layout, get_layout

__all__ = [
    "COCO17",
    "DataFormatError",
    "LabelRow",
    "Layout",
    "Recording",
    "get_layout",
    "read_labels",
    "read_recording",
    "write_labels",
    "write_recording",
]
