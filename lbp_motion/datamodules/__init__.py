"""LightningDataModules: :class:`MotionDataModule` (the base every DataModule of
lbp_motion shares: subject splits, the training plan's hooks, class weights) and the
TUG and EmoPain DataModules built on it."""

from lbp_motion.datamodules.base import MotionDataModule
from lbp_motion.datamodules.emopain import EmoPainDataModule
from lbp_motion.datamodules.tug import PoseWindowDataset, TUGDataModule

__all__ = ["EmoPainDataModule", "MotionDataModule", "PoseWindowDataset", "TUGDataModule"]
