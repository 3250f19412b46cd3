"""LightningModules: BaseTask and the tasks built on it, found through entry points."""

from .anomaly import AnomalyTask
from .base import BaseTask
from .cascade import CascadeTask
from .classification import ClassificationTask
from .hierarchical import HierarchicalTask
from .joint import JointTask
from .mil import MILTask
from .recording import RecordingTask
from .registry import load_task, registered_tasks

__all__ = [
    "AnomalyTask",
    "BaseTask",
    "CascadeTask",
    "ClassificationTask",
    "HierarchicalTask",
    "JointTask",
    "MILTask",
    "RecordingTask",
    "load_task",
    "registered_tasks",
]
