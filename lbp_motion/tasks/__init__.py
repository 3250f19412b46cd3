"""LightningModules: BaseTask and the tasks built on it, found through entry points."""

from .base import BaseTask
from .classification import ClassificationTask
from .joint import JointTask
from .registry import load_task, registered_tasks

__all__ = ["BaseTask", "ClassificationTask", "JointTask", "load_task", "registered_tasks"]
