"""detectron2 backend: COCO keypoint R-CNN (R50-FPN, 3x schedule), what the TUG method used.

An optional extra: detectron2 is not on PyPI and builds only from source against a
matching torch + torchvision, so it is imported when the backend is created and its
absence gives one :class:`~.base.BackendUnavailable` error saying how to install it.

The conversion from detectron2's output (:func:`instances_to_poses`) relies only on
its documented output format (``Instances`` with ``pred_keypoints`` ``(N, 17, 3)`` =
x, y, score in input pixels, ``scores`` ``(N,)`` and ``pred_boxes`` ``(N, 4)`` XYXY),
so it is tested without detectron2.

Keypoint confidences are detectron2's keypoint scores: the spatial softmax probability
at the heatmap peak, in (0, 1], typically lower than MediaPipe's visibilities
(detectron2's own visualiser draws keypoints above 0.05). Consider a lower
``data.min_confidence`` when training on detectron2 keypoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lbp_motion.pose.base import BackendUnavailable, PersonPose, PoseEstimator

CONFIG = "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml"
INSTALL_HINT = (
    "detectron2 is not installed. It is not on PyPI; install torch and torchvision first, "
    "then build it from source: pip install 'git+https://github.com/facebookresearch/detectron2.git' "
    "(see https://detectron2.readthedocs.io/en/latest/tutorials/install.html), "
    "or use --backend mediapipe"
)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "tensor"):  # detectron2 Boxes
        value = value.tensor
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def instances_to_poses(instances: Any, *, min_score: float = 0.0) -> list[PersonPose]:
    """detectron2 ``Instances`` of one image -> people in coco17, highest score first.

    Uses ``pred_keypoints`` (N, 17, 3), ``scores`` (N,) and, when present,
    ``pred_boxes`` (N, 4). Keypoint scores are clipped to [0, 1]; people scoring below
    ``min_score`` are dropped.
    """
    kps = _numpy(instances.pred_keypoints).astype(np.float32)
    if kps.size == 0:
        return []
    if kps.ndim != 3 or kps.shape[1:] != (17, 3):
        raise ValueError(f"pred_keypoints has shape {kps.shape}; expected (N, 17, 3)")
    n = kps.shape[0]
    scores = (
        _numpy(instances.scores).astype(np.float64).reshape(n)
        if hasattr(instances, "scores")
        else np.ones(n)
    )
    boxes = (
        _numpy(instances.pred_boxes).astype(np.float64).reshape(n, 4)
        if hasattr(instances, "pred_boxes")
        else None
    )
    out = []
    for i in np.argsort(-scores, kind="stable"):
        if scores[i] < min_score:
            continue
        kp = kps[i].copy()
        kp[:, 2] = np.clip(np.nan_to_num(kp[:, 2]), 0.0, 1.0)
        bad = ~np.isfinite(kp[:, :2]).all(axis=1)
        kp[bad] = 0.0
        out.append(
            PersonPose(
                kp, "coco17", score=float(scores[i]), box=None if boxes is None else boxes[i]
            )
        )
    return out


class Detectron2PoseEstimator(PoseEstimator):
    """detectron2's keypoint R-CNN on batches of frames.

    Args:
        config: model-zoo config (default R50-FPN 3x) or a path to a config file.
        weights: checkpoint path or URL; default: the model zoo's weights for ``config``.
        device: ``cpu``, ``cuda`` or ``auto`` (CUDA when available).
        score_threshold: people below this detection score are dropped (0.5 as in
            detectron2's demo).
        batch_size: frames per forward pass.
        model: alias of ``weights`` (the extract-poses ``--model`` option).
    """

    name = "detectron2"
    layout = "coco17"

    def __init__(
        self,
        config: str = CONFIG,
        weights: str | None = None,
        *,
        device: str = "auto",
        score_threshold: float = 0.5,
        batch_size: int = 4,
        model: str | None = None,
        **_ignored: Any,
    ) -> None:
        try:
            import detectron2
            from detectron2 import model_zoo
            from detectron2.checkpoint import DetectionCheckpointer
            from detectron2.config import get_cfg
            from detectron2.data import transforms as T
            from detectron2.modeling import build_model
        except ImportError:
            raise BackendUnavailable(INSTALL_HINT) from None
        import torch

        weights = weights or model
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        cfg = get_cfg()
        from pathlib import Path

        cfg.merge_from_file(config if Path(config).is_file() else model_zoo.get_config_file(config))
        cfg.MODEL.WEIGHTS = weights or model_zoo.get_checkpoint_url(config)
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = score_threshold
        cfg.MODEL.DEVICE = device
        self.cfg = cfg
        self.model = build_model(cfg).eval()
        DetectionCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        self.aug = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
        self.batch_size = batch_size
        self.score_threshold = score_threshold
        self._torch = torch
        self._version = getattr(detectron2, "__version__", "?")
        self._config = config

    def info(self) -> dict[str, str]:
        return {
            "backend": self.name,
            "model": f"{self._config}; weights: {self.cfg.MODEL.WEIGHTS}",
            "backend_version": f"detectron2 {self._version}",
        }

    def estimate(
        self, frames: Sequence[np.ndarray], timestamps_ms: Sequence[int]
    ) -> list[list[PersonPose]]:
        torch = self._torch
        inputs = []
        for frame in frames:
            image = frame[:, :, ::-1] if self.cfg.INPUT.FORMAT == "BGR" else frame
            h, w = image.shape[:2]
            resized = self.aug.get_transform(image).apply_image(image)
            tensor = torch.as_tensor(
                np.ascontiguousarray(resized).astype("float32").transpose(2, 0, 1)
            )
            inputs.append({"image": tensor, "height": h, "width": w})
        with torch.inference_mode():
            outputs = self.model(inputs)
        return [
            instances_to_poses(o["instances"].to("cpu"), min_score=self.score_threshold)
            for o in outputs
        ]
