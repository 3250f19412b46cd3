"""Prediction with a trained checkpoint on a video, a keypoint file or a folder of them
(``lbp predict-file``, :func:`lbp_motion.predict`): keypoints (through
:mod:`lbp_motion.pose`), windows, class probabilities, TUG time, timeline and overlay.
"""
