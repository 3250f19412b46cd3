"""Input streams (joint, bone, joint motion, bone motion) and short recordings padded
into one masked window (issue 13, items 2 and 3)."""

import logging
import shutil

import numpy as np
import pytest
import torch

from lbp_motion.datamodules.tug import TUGDataModule
from lbp_motion.datasets.format import (
    LabelRow,
    read_labels,
    read_recording,
    write_labels,
    write_recording,
)
from lbp_motion.datasets.layouts import COCO17, LAYOUTS, Layout
from lbp_motion.datasets.normalize import body_scale, normalize_skeleton
from lbp_motion.datasets.windows import window_index, window_starts
from lbp_motion.errors import ConfigError
from lbp_motion.transforms.streams import (
    FRAME_STREAMS,
    STREAMS,
    bones,
    motion,
    num_features,
    stream_features,
)
from tests.conftest import SHARED_DATA, TINY_ARGS

# a hand-made 4-joint skeleton: 0 root, 1 child of 0, 2 and 3 children of 1
TOY = Layout(name="toy4", joints=("a", "b", "c", "d"), parents=(0, 0, 1, 1))


def _joints(rng, frames=5, joints=4, visible=None):
    x = np.zeros((frames, joints, 3), np.float32)
    x[..., :2] = rng.normal(size=(frames, joints, 2))
    x[..., 2] = 1.0
    if visible is not None:
        x[~visible] = 0.0
    return x


def test_every_layout_has_a_tree_and_coco_is_pyskls():
    for layout in LAYOUTS.values():
        parents = layout.bone_parents()
        roots = np.flatnonzero(parents == np.arange(layout.num_joints))
        assert len(roots) == 1, layout.name
        for j in range(layout.num_joints):  # every joint reaches the root
            k, steps = j, 0
            while parents[k] != k:
                k, steps = parents[k], steps + 1
                assert steps <= layout.num_joints
    # (child, parent) of PySKL's JointToBone for COCO
    pyskl = [(0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (5, 0), (6, 0), (7, 5), (8, 6), (9, 7), (10, 8),
             (11, 0), (12, 0), (13, 11), (14, 12), (15, 13), (16, 14)]  # fmt: skip
    assert [(c, int(p)) for c, p in enumerate(COCO17.bone_parents())] == pyskl


def test_bone_is_child_minus_parent():
    x = np.array(
        [[[1.0, 2.0, 1], [4.0, 6.0, 1], [5.0, 5.0, 1], [0.0, 0.0, 0]]], np.float32
    )  # joint d missing
    b = bones(x, TOY)[0]
    np.testing.assert_array_equal(b[0], [0, 0, 1])  # root: zero, its visibility
    np.testing.assert_array_equal(b[1], [3, 4, 1])  # b - a
    np.testing.assert_array_equal(b[2], [1, -1, 1])  # c - b
    np.testing.assert_array_equal(b[3], [0, 0, 0])  # d missing: no bone, flagged
    x[0, 1] = 0  # a missing parent: its children's bones vanish too, not c - (0, 0)
    b = bones(x, TOY)[0]
    np.testing.assert_array_equal(b[1:], np.zeros((3, 3)))


def test_motion_of_static_and_translated_skeletons():
    rng = np.random.default_rng(0)
    base = _joints(rng, frames=1)
    static = np.repeat(base, 6, axis=0)
    m = motion(static)
    np.testing.assert_array_equal(m[..., :2], 0)
    np.testing.assert_array_equal(m[0, :, 2], 0)  # no previous frame
    np.testing.assert_array_equal(m[1:, :, 2], 1)
    d = np.array([0.25, -0.5], np.float32)
    moving = static.copy()
    moving[..., :2] += np.arange(6, dtype=np.float32)[:, None, None] * d
    m = motion(moving)
    np.testing.assert_allclose(m[1:, :, :2], np.broadcast_to(d, (5, 4, 2)), atol=1e-6)
    np.testing.assert_array_equal(m[0], 0)
    # the bones of a translated skeleton do not move
    np.testing.assert_allclose(motion(bones(moving, TOY))[..., :2], 0, atol=1e-6)


def test_motion_involving_a_missing_joint_is_zero_and_flagged():
    rng = np.random.default_rng(1)
    visible = np.ones((5, 4), bool)
    visible[2, 3] = False
    m = motion(_joints(rng, visible=visible))
    for t in (2, 3):  # differences into and out of the missing frame
        np.testing.assert_array_equal(m[t, 3], [0, 0, 0])
    assert m[1, 3, 2] == 1 and m[4, 3, 2] == 1 and np.all(m[3, :3, 2] == 1)


def test_bones_are_translation_invariant():
    rng = np.random.default_rng(2)
    visible = rng.random((7, 4)) > 0.2
    x = _joints(rng, frames=7, visible=visible)
    shift = rng.normal(size=(7, 1, 2)).astype(np.float32)  # a different translation per frame
    moved = x.copy()
    moved[..., :2] += shift * visible[..., None]
    np.testing.assert_allclose(bones(moved, TOY), bones(x, TOY), atol=1e-5)


def test_streams_concatenate_in_the_order_given():
    rng = np.random.default_rng(3)
    x = _joints(rng, frames=6)
    f = stream_features(x, TOY, ["bone_motion", "joint", "joint_motion", "bone"])
    assert f.shape == (6, 4 * 12) and f.dtype == np.float32
    parts = np.split(f, 4, axis=-1)
    np.testing.assert_array_equal(parts[0], motion(bones(x, TOY)).reshape(6, -1))
    np.testing.assert_array_equal(parts[1], x.reshape(6, -1))
    np.testing.assert_array_equal(parts[2], motion(x).reshape(6, -1))
    np.testing.assert_array_equal(parts[3], bones(x, TOY).reshape(6, -1))
    # leading batch dimensions
    batch = np.stack([x, x[::-1]])
    np.testing.assert_array_equal(
        stream_features(batch, TOY, ["joint_motion"])[1], motion(x[::-1]).reshape(6, -1)
    )


@pytest.mark.parametrize(
    "streams", [["joint"], ["bone"], ["joint", "bone", "joint_motion"], list(FRAME_STREAMS)]
)
def test_num_features_follows_the_streams(tiny_tug, streams):
    dm = TUGDataModule(str(tiny_tug), streams=streams, stride=15)
    assert dm.spec["num_features"] == len(streams) * 17 * 3 == num_features(COCO17, streams)
    assert dm.spec["streams"] == streams
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape[-1] == dm.spec["num_features"] and batch["x"].dtype == torch.float32
    assert dm.describe()["streams"] == streams


def test_default_is_todays_features_bit_for_bit(tiny_tug):
    dm = TUGDataModule(str(tiny_tug), stride=15)
    dm.setup("fit")
    assert dm.spec["features"] == "x,y,visible per joint" and dm.spec["num_features"] == 51
    ds = dm._datasets["train"]
    both = TUGDataModule(str(tiny_tug), stride=15, streams=["joint", "bone"])
    both.setup("fit")
    for i in range(len(ds)):
        r, start = ds.index[i]
        kp = ds.keypoints[r][start : start + 30]
        before = normalize_skeleton(kp, COCO17, min_confidence=0.3, scale=ds.scales[r]).reshape(
            30, -1
        )
        item = ds[i]
        assert torch.equal(item["x"], torch.from_numpy(before))
        assert torch.equal(both._datasets["train"][i]["x"][:, :51], item["x"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"streams": ["joint", "velocity"]},
            r"data: streams=\['joint', 'velocity'\]; expected a non-empty list",
        ),
        ({"streams": []}, "expected a non-empty list"),
        ({"streams": ["bone", "bone"]}, "without repeats"),
        ({"short_recordings": "trim"}, "data: short_recordings='trim'; expected skip or pad"),
    ],
)
def test_bad_settings_are_one_line_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message) as err:
        TUGDataModule(**kwargs)
    assert "\n" not in str(err.value)


def test_bones_need_a_tree(tiny_tug):
    from lbp_motion.datasets.layouts import register_layout

    register_layout(Layout(name="treeless3", joints=("a", "b", "c")))
    try:
        TUGDataModule(layout="treeless3", streams=["joint"])  # joints need no tree
        with pytest.raises(ConfigError, match="layout 'treeless3' defines no parent per joint"):
            TUGDataModule(layout="treeless3", streams=["joint", "bone_motion"])
    finally:
        LAYOUTS.pop("treeless3")


# -- short recordings -----------------------------------------------------------------------
def test_window_index_pads_short_recordings_only_when_asked():
    assert window_index([35, 10, 40, 0], 30, 5).tolist() == [
        [0, 0],
        [0, 5],
        [2, 0],
        [2, 5],
        [2, 10],
    ]
    padded = window_index([35, 10, 40, 0], 30, 5, pad_short=True)
    assert padded.tolist() == [
        [0, 0],
        [0, 5],
        [1, 0],
        [2, 0],
        [2, 5],
        [2, 10],
    ]  # an empty one: nothing to pad
    assert window_starts(29, 30, 5, pad_short=True).tolist() == [0]
    assert window_starts(34, 30, 5, pad_short=True).tolist() == [
        0
    ]  # long enough: no padding, as before


@pytest.fixture
def with_short(tiny_tug, tmp_path):
    """The tiny folder plus a 12-frame recording (the start of a real one) of a new subject."""
    dst = tmp_path / "data"
    shutil.copytree(tiny_tug, dst)
    source = read_recording(next(iter(sorted(dst.glob("*.npz")))))
    write_recording(
        dst / "short.npz",
        source.keypoints[:12],
        layout="coco17",
        fps=30,
        image_size=source.image_size,
    )
    write_labels(dst, read_labels(dst) + [LabelRow("short", "s999", "medium")])
    return dst


@pytest.mark.parametrize("streams", [["joint"], list(STREAMS)])
def test_a_padded_window_is_masked_exactly_on_the_padded_frames(with_short, caplog, streams):
    dm = TUGDataModule(
        str(with_short), short_recordings="pad", predict_split="all", streams=streams
    )
    with caplog.at_level(logging.INFO):
        dm.setup("fit")
    assert (
        "1 padded into one masked window and 0 skipped (data.short_recordings=pad)" in caplog.text
    )
    r = dm.recording_names.index("short")
    assert (
        dm.recording_subjects[r] == "s999"
        and dm.classes[dm._datasets["predict"].labels[r]] == "medium"
    )
    ds = dm._datasets["predict"]
    rows = np.flatnonzero(ds.index[:, 0] == r)
    assert ds.index[rows].tolist() == [[r, 0]]  # one window, at the start
    item = ds[int(rows[0])]
    assert item["x"].shape == (30, num_features(COCO17, streams))
    assert item["mask"].tolist() == [True] * 12 + [False] * 18
    assert torch.all(item["x"][12:] == 0) and torch.any(item["x"][:12] != 0)
    assert (
        item["y"].item() == dm.classes.index("medium")
        and item["recording"].item() == r
        and item["start"].item() == 0
    )
    # the real frames are the features of those frames, as for any window
    kp = ds.keypoints[r]
    joints = normalize_skeleton(kp, COCO17, min_confidence=0.3, scale=body_scale(kp, COCO17, 0.3))
    np.testing.assert_array_equal(item["x"][:12, :51].numpy(), joints.reshape(12, -1))
    # the other recordings' windows, labels and subjects are those of the skip setting
    skip = TUGDataModule(str(with_short), predict_split="all", streams=streams)
    skip.setup("fit")
    assert "short" not in skip.recording_names
    others = ds.index[ds.index[:, 0] != r]
    keep = [dm.recording_names[i] for i in others[:, 0]]
    assert keep == [skip.recording_names[i] for i in skip._datasets["predict"].index[:, 0]]
    assert others[:, 1].tolist() == skip._datasets["predict"].index[:, 1].tolist()
    assert [dm.recording_subjects[i] for i in others[:, 0]] == [
        skip.recording_subjects[i] for i in skip._datasets["predict"].index[:, 0]
    ]
    np.testing.assert_array_equal(
        ds.labels[others[:, 0]], skip._datasets["predict"].window_labels()
    )


def test_skipping_is_counted_in_one_line(with_short, caplog):
    dm = TUGDataModule(str(with_short))
    with caplog.at_level(logging.INFO):
        dm.setup("fit")
    assert "short.npz: 12 frames, shorter than one window of 30; skipped" in caplog.text
    assert (
        "of 1 recordings shorter than one window of 30 frames, 0 padded into one masked window and 1 skipped"
        in caplog.text
    )


def test_masked_tails_do_not_change_the_models_outputs():
    """The three model families give a padded window the output of its real frames
    alone (CNN: up to BatchNorm, evaluated in eval mode)."""
    from lbp_motion.models import CNN1DClassifier, LSTMClassifier, TransformerClassifier

    torch.manual_seed(0)
    x = torch.randn(1, 12, 51)
    padded = torch.cat([x, torch.zeros(1, 18, 51)], dim=1)
    mask = torch.tensor([[True] * 12 + [False] * 18])
    for model in (
        TransformerClassifier(51, 3, d_model=16, num_layers=1, num_heads=2),
        LSTMClassifier(51, 3),
    ):
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(
                model(padded, mask),
                model(x, torch.ones(1, 12, dtype=torch.bool)),
                atol=1e-5,
                rtol=1e-4,
            )
    cnn = CNN1DClassifier(51, 3, channels=(8,), kernel_size=3).eval()
    with torch.no_grad():
        out = cnn(padded, mask)
        # the last real frame sees a zero neighbour either way ('same' padding): equal
        torch.testing.assert_close(
            out, cnn(x, torch.ones(1, 12, dtype=torch.bool)), atol=1e-5, rtol=1e-4
        )


# -- real data --------------------------------------------------------------------------------
PHASES = SHARED_DATA / "tst-tug-phases"
PHASE_CLASSES = ["sit", "sit_to_stand", "walk_out", "turn", "walk_back", "turn_to_sit"]


@pytest.mark.skipif(
    not (PHASES / "labels.csv").is_file(), reason=f"real TUG phases not found at {PHASES}"
)
def test_real_short_phases_do_not_vanish_with_pad():
    counts = {}
    for mode in ("skip", "pad"):
        dm = TUGDataModule(str(PHASES), classes=PHASE_CLASSES, short_recordings=mode)
        dm.setup("fit")
        counts[mode] = len(dm.recording_names)
        windows = sum(len(dm._datasets[s]) for s in ("train", "val", "test"))
        recs = set().union(
            *(dm._datasets[s].index[:, 0].tolist() for s in ("train", "val", "test"))
        )
        assert len(recs) == counts[mode]  # every kept recording has a window
    assert counts == {"skip": 320, "pad": 406}
    assert windows > 0


# -- end to end ---------------------------------------------------------------------------
@pytest.mark.e2e
def test_fit_and_predict_with_streams(tiny_tug, tmp_path):
    """A tiny `lbp fit` on joint+bone+joint_motion; `lbp predict --ckpt_path` and the
    one-file prediction rebuild the 153-wide input from the checkpoint alone."""
    from lbp_motion.cli import main
    from lbp_motion.inference.predict import predict
    from lbp_motion.tasks.registry import read_checkpoint_info

    argv = ["fit", "--config", "experiments/tug/attention_small.yaml", *TINY_ARGS, "--data.root", str(tiny_tug),
            "--data.streams", "[joint, bone, joint_motion]", "--data.short_recordings", "pad",
            "--trainer.max_epochs", "1", "--test_after_fit", "false", "--run.out_dir", str(tmp_path / "runs")]  # fmt: skip
    assert main(argv) == 0
    ckpt = next((tmp_path / "runs").glob("*/version_0/checkpoints/last.ckpt"))
    data = read_checkpoint_info(ckpt)["data"]
    assert data["streams"] == ["joint", "bone", "joint_motion"] and data["num_features"] == 153
    assert data["short_recordings"] == "pad"
    assert main(["predict", "--ckpt_path", str(ckpt), "--data.predict_split", "all",
                 "--trainer.enable_progress_bar", "false", "--run.wandb", "disabled",
                 "--run.out_dir", str(tmp_path / "pred")]) == 0  # fmt: skip
    assert next((tmp_path / "pred").glob("*/version_*/recording_predictions.csv")).is_file()
    recording = next(iter(sorted(tiny_tug.glob("*.npz"))))
    result = predict(ckpt, recording)
    assert (
        result["streams"] == ["joint", "bone", "joint_motion"]
        and not result["padded"]
        and len(result["windows"]) > 1
    )
    # trained with short_recordings: pad, a clip shorter than a window is one padded window
    rec = read_recording(recording)
    write_recording(
        tmp_path / "clip.npz",
        rec.keypoints[:20],
        layout="coco17",
        fps=rec.fps,
        image_size=rec.image_size,
    )
    short = predict(ckpt, tmp_path / "clip.npz")
    assert short["padded"] and [w["start"] for w in short["windows"]] == [0]
    assert short["windows"][0]["end_s"] == short["duration_s"]
