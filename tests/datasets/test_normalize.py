import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbp_motion.datasets.layouts import COCO17
from lbp_motion.datasets.normalize import body_scale, normalize_skeleton, skeleton_centre


def _skeleton(seed=0, t=30):
    rng = np.random.default_rng(seed)
    kp = np.zeros((t, 17, 3), np.float32)
    kp[..., 0] = rng.uniform(200, 400, (t, 17))
    kp[..., 1] = rng.uniform(100, 500, (t, 17))
    kp[..., 2] = rng.uniform(0.5, 1.0, (t, 17))
    kp[rng.uniform(size=(t, 17)) < 0.1] = 0  # missed joints
    return kp


@settings(max_examples=25, deadline=None)
@given(
    scale=st.floats(0.2, 5.0),
    dx=st.floats(-1000, 1000),
    dy=st.floats(-1000, 1000),
    seed=st.integers(0, 1000),
)
def test_invariant_to_translation_and_scale(scale, dx, dy, seed):
    kp = _skeleton(seed)
    moved = kp.copy()
    vis = moved[..., 2] > 0
    moved[..., 0] = np.where(vis, moved[..., 0] * scale + dx, 0)
    moved[..., 1] = np.where(vis, moved[..., 1] * scale + dy, 0)
    a = normalize_skeleton(kp, COCO17, scale=body_scale(kp, COCO17))
    b = normalize_skeleton(moved, COCO17, scale=body_scale(moved, COCO17))
    np.testing.assert_allclose(a, b, atol=2e-4)


def test_centre_is_mean_midhip_and_scale_is_torso_length():
    kp = np.zeros((2, 17, 3), np.float32)
    kp[..., 2] = 1
    lh, rh, ls, rs = (
        COCO17.index(n) for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder")
    )
    kp[0, [lh, rh], :2] = [[90, 300], [110, 300]]  # mid-hip (100, 300)
    kp[1, [lh, rh], :2] = [[190, 300], [210, 300]]  # mid-hip (200, 300)
    kp[:, [ls, rs], 0] = kp[:, [lh, rh], 0]
    kp[0, [ls, rs], 1] = 250  # torso 50
    kp[1, [ls, rs], 1] = 230  # torso 70
    np.testing.assert_allclose(skeleton_centre(kp, COCO17), [150, 300])
    assert body_scale(kp, COCO17) == pytest.approx(60.0)  # median of 50 and 70
    out = normalize_skeleton(kp, COCO17, scale=60.0)
    # left hip of frame 0: ((90 - 150) / 60, -(300 - 300) / 60)
    np.testing.assert_allclose(out[0, lh], [-1.0, 0.0, 1.0])
    # shoulders are above the hips: y points up
    assert out[0, ls, 1] > 0


def test_low_confidence_joints_are_masked_to_zero():
    kp = _skeleton()
    kp[:, 0, 2] = 0.1
    out = normalize_skeleton(kp, COCO17, min_confidence=0.3)
    assert np.all(out[:, 0] == 0)
    assert np.all(out[kp[..., 2] >= 0.3][:, 2] == 1)


def test_without_hips_falls_back_to_visible_joints():
    kp = _skeleton()
    kp[:, [COCO17.index("left_hip"), COCO17.index("right_hip")]] = 0
    vis = kp[..., 2] >= 0.3
    np.testing.assert_allclose(skeleton_centre(kp, COCO17), kp[..., :2][vis].mean(0), rtol=1e-5)
    assert body_scale(kp, COCO17) > 0
    assert body_scale(np.zeros((5, 17, 3), np.float32), COCO17) == 1.0
