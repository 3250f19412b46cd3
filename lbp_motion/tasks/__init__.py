"""LightningModules: BaseTask and the tasks built on it, found through entry points."""

from lbp_motion.tasks.anomaly import AnomalyTask
from lbp_motion.tasks.base import BaseTask
from lbp_motion.tasks.cascade import CascadeTask
from lbp_motion.tasks.classification import ClassificationTask
from lbp_motion.tasks.hierarchical import HierarchicalTask
from lbp_motion.tasks.joint import JointTask
from lbp_motion.tasks.mil import MILTask
from lbp_motion.tasks.recording import RecordingTask
from lbp_motion.tasks.registry import load_task, registered_tasks
from lbp_motion.tasks.subject_invariant import SubjectInvariantTask

__all__ = [
    "AnomalyTask",
    "BaseTask",
    "CascadeTask",
    "ClassificationTask",
    "HierarchicalTask",
    "JointTask",
    "MILTask",
    "RecordingTask",
    "SubjectInvariantTask",
    "load_task",
    "registered_tasks",
]
