"""The detectron2 backend without detectron2: its absence is one clear error, and its
conversion code runs on outputs of detectron2's documented shape (``Instances`` with
``pred_keypoints`` (N, 17, 3) = x, y, score; ``scores`` (N,); ``pred_boxes`` Boxes of
(N, 4) XYXY; see detectron2's "Model Output Format")."""

import importlib.util

import numpy as np
import pytest
import torch

from lbp_motion.pose import BackendUnavailable, create_estimator
from lbp_motion.pose.detectron2_backend import instances_to_poses
from lbp_motion.pose.tracking import main_subject


class Boxes:  # detectron2.structures.Boxes: a (N, 4) tensor in .tensor
    def __init__(self, tensor):
        self.tensor = tensor


class Instances:  # detectron2.structures.Instances: fields as attributes, len(), .to()
    def __init__(self, image_size, **fields):
        self.image_size = image_size
        for k, v in fields.items():
            setattr(self, k, v)

    def __len__(self):
        return len(self.scores)

    def to(self, device):
        return self


def _instances(people):
    """people: list of (x offset, detection score)."""
    kps, boxes, scores = [], [], []
    for x, score in people:
        kp = torch.zeros(17, 3)
        kp[:, 0] = x + torch.arange(17.0)
        kp[:, 1] = 100 + 10 * torch.arange(17.0)
        kp[:, 2] = torch.linspace(0.02, 0.4, 17)  # spatial-softmax probabilities: small, > 0
        kps.append(kp)
        boxes.append(torch.tensor([x - 5, 90, x + 25, 280]))
        scores.append(score)
    return Instances(
        (480, 640),
        pred_keypoints=torch.stack(kps) if kps else torch.zeros(0, 17, 3),
        scores=torch.tensor(scores),
        pred_boxes=Boxes(torch.stack(boxes).float() if boxes else torch.zeros(0, 4)),
    )


def test_instances_become_coco17_people_ranked_by_score():
    poses = instances_to_poses(_instances([(50, 0.7), (300, 0.99), (500, 0.3)]), min_score=0.5)
    assert [p.score for p in poses] == pytest.approx([0.99, 0.7])
    p = poses[0]
    assert p.layout == "coco17" and p.keypoints.shape == (17, 3) and p.keypoints.dtype == np.float32
    np.testing.assert_allclose(p.keypoints[3], [303, 130, 0.02 + 3 * 0.38 / 16], rtol=1e-5)
    np.testing.assert_allclose(p.box, [295, 90, 325, 280])
    assert instances_to_poses(_instances([])) == []


def test_scores_are_clipped_and_bad_shapes_named():
    inst = _instances([(10, 0.9)])
    inst.pred_keypoints[0, 0, 2] = 3.5  # an out-of-range score
    inst.pred_keypoints[0, 1, 0] = float("nan")
    kp = instances_to_poses(inst)[0].keypoints
    assert kp[0, 2] == 1.0 and (kp[1] == 0).all()
    with pytest.raises(ValueError, match=r"\(N, 17, 3\)"):
        instances_to_poses(
            Instances((1, 1), pred_keypoints=torch.zeros(1, 18, 3), scores=torch.ones(1))
        )


def test_detectron2_outputs_run_through_tracking():
    frames = [instances_to_poses(_instances([(100 + 8 * t, 0.9), (600, 0.95)])) for t in range(30)]
    subject = main_subject(frames, 17)
    assert subject.keypoints[0, 0, 0] == 100 and subject.keypoints[29, 0, 0] == 100 + 8 * 29


@pytest.mark.skipif(
    importlib.util.find_spec("detectron2") is not None, reason="detectron2 is installed here"
)
def test_missing_detectron2_is_one_clear_error():
    with pytest.raises(
        BackendUnavailable, match=r"detectron2 is not installed.*facebookresearch/detectron2"
    ):
        create_estimator("detectron2")
