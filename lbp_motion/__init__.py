"""lbp_motion: stratify lower-back pain from human motion, federated across clinics."""

from lbp_motion import _moved
from lbp_motion._version import __version__

_moved.install()  # old module names (lbp_motion.data.tug, ...) still import, with a warning

__all__ = ["__version__", "predict"]


def predict(checkpoint, path, **kwargs):
    """Severity of one video or keypoint file with a trained checkpoint: class
    probabilities (mean of the window probabilities), per-window probabilities and the
    TUG time where the pose track allows, as a dict. ``out_dir=`` also writes
    ``prediction.json``, ``timeline.png`` and (``overlay=True``) ``overlay.mp4``. See
    :func:`lbp_motion.inference.predict.predict` for all options and docs/pose.md."""
    from lbp_motion.inference.predict import (
        predict as _predict,  # here: keeps `import lbp_motion` light
    )

    return _predict(checkpoint, path, **kwargs)
