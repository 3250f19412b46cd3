"""Video -> keypoints: pose backends, video reading, one-subject tracking, the
``lbp extract-poses`` runner, importers of keypoints made elsewhere, and prediction on
a video or keypoint file (:func:`lbp_motion.inference.predict.predict`, also
``lbp_motion.predict``); see docs/pose.md.

Importing this package does not import mediapipe, detectron2 or PyAV: they are
imported where they are used.
"""

from lbp_motion.pose.base import (
    BackendUnavailable,
    PersonPose,
    PoseEstimator,
    available_backends,
    create_estimator,
    register_backend,
)
from lbp_motion.pose.importers import (
    import_keypoints,
    read_coco_results,
    read_keraal_json,
    read_openpose_json,
)

__all__ = [
    "BackendUnavailable",
    "PersonPose",
    "PoseEstimator",
    "available_backends",
    "create_estimator",
    "register_backend",
    "import_keypoints",
    "read_coco_results",
    "read_keraal_json",
    "read_openpose_json",
    "extract_folder",
    "extract_video",
]


def __getattr__(name: str):
    if name in ("extract_folder", "extract_video"):
        from lbp_motion.pose import extract

        return getattr(extract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
