"""LightningModules: BaseTask and the tasks built on it, found through entry points."""

from .base import BaseTask
from .classification import ClassificationTask
from .registry import load_task, registered_tasks

__all__ = ["BaseTask", "ClassificationTask", "load_task", "registered_tasks"]
