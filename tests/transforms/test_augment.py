"""Skeleton augmentation (lbp_motion.transforms.augment): each transform by a property, the
config checks, and the DataModules' use of it (training data only, seeded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lbp_motion.datamodules.tug import TUGDataModule
from lbp_motion.datasets.layouts import COCO17, EMOPAIN22
from lbp_motion.errors import ConfigError
from lbp_motion.transforms.augment import (
    AugmentedDataset,
    Crop,
    Dropout,
    Mirror,
    Noise,
    Rotate,
    Scale,
    Shear,
    Skeleton,
    Span,
    Speed,
    build_pipeline,
    interpolate_keypoints,
    mirror,
)

ALL = [
    {"name": "speed", "factor": [0.8, 1.25]},
    {"name": "crop", "min_ratio": 0.8},
    {"name": "mirror", "p": 0.5},
    {"name": "rotate", "degrees": 15},
    {"name": "scale", "factor": [0.9, 1.1]},
    {"name": "shear", "max": 0.1},
    {"name": "noise", "std": 0.01},
    {"name": "dropout", "rate": 0.05},
]


def skeleton(dims: int, seed: int = 0, frames: int = 12) -> Skeleton:
    layout = COCO17 if dims == 2 else EMOPAIN22
    rng = np.random.default_rng(seed)
    coords = rng.normal(100.0, 30.0, size=(frames, layout.num_joints, dims))
    conf = rng.uniform(0.0, 1.0, size=(frames, layout.num_joints))
    conf[rng.random(conf.shape) < 0.2] = 0.0
    return Skeleton(coords, conf, 40.0, layout.flip_pairs, None if dims == 2 else 1)


def bone_lengths(sk: Skeleton, layout) -> np.ndarray:
    a, b = np.array(layout.edges).T
    return np.linalg.norm(sk.coords[:, a] - sk.coords[:, b], axis=-1)


# -- each transform by a property -----------------------------------------------------------


@pytest.mark.parametrize("dims", [2, 3])
def test_mirror_twice_is_the_identity_and_swaps_the_sides(dims):
    sk = skeleton(dims)
    once = mirror(sk)
    twice = mirror(once)
    np.testing.assert_allclose(twice.coords, sk.coords, atol=1e-9)
    np.testing.assert_array_equal(twice.confidence, sk.confidence)
    assert not np.allclose(once.coords, sk.coords)
    layout = COCO17 if dims == 2 else EMOPAIN22
    left, right = layout.index("left_shoulder"), layout.index("right_shoulder")
    c = sk.centre()
    # the left shoulder now is the right one reflected in the horizontal axis (x)
    np.testing.assert_allclose(once.coords[:, left, 0], 2 * c[0] - sk.coords[:, right, 0])
    np.testing.assert_allclose(once.coords[:, left, 1:], sk.coords[:, right, 1:])
    np.testing.assert_array_equal(once.confidence[:, left], sk.confidence[:, right])
    # lengths of the mirrored bones are the other side's
    np.testing.assert_allclose(
        np.sort(bone_lengths(once, layout), axis=1), np.sort(bone_lengths(sk, layout), axis=1)
    )


def test_the_emopain_graph_is_defined_once_and_has_its_sides():
    from lbp_motion.datasets import emopain

    assert EMOPAIN22.joints == emopain.JOINT_NAMES and EMOPAIN22.edges == emopain.JOINT_EDGES
    named = {(EMOPAIN22.joints[a], EMOPAIN22.joints[b]) for a, b in EMOPAIN22.flip_pairs}
    assert (
        len(named) == 8
        and ("left_wrist", "right_wrist") in named
        and ("left_collar", "right_collar") in named
    )


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("transform", [Rotate(degrees=90), Scale(factor=(0.5, 2.0))])
def test_rotation_and_scaling_keep_bone_length_ratios_and_the_mask(dims, transform):
    layout = COCO17 if dims == 2 else EMOPAIN22
    sk = skeleton(dims)
    for seed in range(5):
        out = transform(sk, np.random.default_rng(seed))
        assert not np.allclose(out.coords, sk.coords)
        before, after = bone_lengths(sk, layout), bone_lengths(out, layout)
        ratio = after / before
        np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-9)  # one factor for every bone
        np.testing.assert_array_equal(out.confidence, sk.confidence)
        if isinstance(transform, Rotate):
            np.testing.assert_allclose(after, before, rtol=1e-9)
            if dims == 3:  # about the vertical axis: heights do not change
                np.testing.assert_allclose(out.coords[..., 1], sk.coords[..., 1])


@pytest.mark.parametrize("dims", [2, 3])
def test_shear_and_noise_keep_the_mask_and_noise_moves_visible_joints_only(dims):
    sk = skeleton(dims)
    sheared = Shear(max=0.3)(sk, np.random.default_rng(1))
    np.testing.assert_array_equal(sheared.confidence, sk.confidence)
    assert not np.allclose(sheared.coords, sk.coords)
    noisy = Noise(std=0.05)(sk, np.random.default_rng(1))
    np.testing.assert_array_equal(noisy.confidence, sk.confidence)
    moved = np.abs(noisy.coords - sk.coords).max(axis=-1) > 0
    np.testing.assert_array_equal(moved, sk.visible)
    spread = (noisy.coords - sk.coords)[sk.visible].std()
    assert 0.5 * 0.05 * sk.scale < spread < 1.5 * 0.05 * sk.scale  # std is in body sizes


@pytest.mark.parametrize("dims", [2, 3])
def test_the_linear_transforms_and_the_mirror_keep_the_centre_in_place(dims):
    # (why a pipeline may fix the centre once, before its first spatial transform)
    sk = skeleton(dims)
    for t in (Rotate(degrees=90), Scale(factor=(0.5, 2.0)), Shear(max=0.5), Mirror(p=1.0)):
        np.testing.assert_allclose(t(sk, np.random.default_rng(3)).centre(), sk.centre(), atol=1e-9)
    pipe = build_pipeline([{"name": "rotate"}, {"name": "mirror"}, {"name": "shear"}])
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    direct = sk
    for t in pipe.transforms:
        direct = t(direct, rng_a)
    np.testing.assert_allclose(pipe.skeleton(sk, rng_b).coords, direct.coords, atol=1e-9)


def test_dropout_makes_joints_missing_and_nothing_else():
    sk = skeleton(2)
    out = Dropout(rate=0.3)(sk, np.random.default_rng(0))
    dropped = (out.confidence == 0) & (sk.confidence > 0)
    assert 0.15 < dropped.sum() / sk.visible.sum() < 0.45
    kept = out.confidence > 0
    np.testing.assert_array_equal(out.confidence[kept], sk.confidence[kept])
    np.testing.assert_array_equal(out.coords, sk.coords)
    whole = Dropout(rate=0.3, whole_window=True)(sk, np.random.default_rng(0))
    gone = (whole.confidence == 0).all(axis=0)
    assert gone.any() and np.array_equal(
        (whole.confidence == 0) & ~gone, (sk.confidence == 0) & ~gone
    )
    np.testing.assert_array_equal(
        Dropout(rate=0.0)(sk, np.random.default_rng(0)).confidence, sk.confidence
    )


def test_probability_zero_and_neutral_parameters_change_nothing():
    sk = skeleton(3)
    rng = np.random.default_rng(0)
    for t in (
        Rotate(p=0.0),
        Scale(p=0.0),
        Shear(p=0.0),
        Mirror(p=0.0),
        Noise(p=0.0),
        Rotate(degrees=0),
        Scale(factor=(1, 1)),
    ):
        out = t(sk, rng)
        np.testing.assert_allclose(out.coords, sk.coords, atol=1e-9)
    span = Span(np.arange(10, 40, dtype=float), 0.0, 99.0)
    for t in (Speed(factor=(1.0, 1.0)), Crop(min_ratio=1.0), Speed(p=0.0), Crop(p=0.0)):
        np.testing.assert_allclose(t(span, rng).times, span.times)


def test_temporal_transforms_keep_the_length_and_stay_inside_the_readable_frames():
    rng = np.random.default_rng(0)
    for _ in range(50):
        start = int(rng.integers(0, 70))
        span = Span(np.arange(start, start + 30, dtype=float), 0.0, 99.0)
        fast = Speed(factor=(1.5, 2.0))(span, rng)
        crop = Crop(min_ratio=0.5)(span, rng)
        for out in (fast, crop):
            assert out.times.shape == (30,) and np.all(np.diff(out.times) > 0)
            assert out.times[0] >= 0 and out.times[-1] <= 99
        assert 1.5 * 29 - 1e-9 <= fast.times[-1] - fast.times[0] <= 2.0 * 29 + 1e-9
        assert crop.times[0] >= start and crop.times[-1] <= start + 29
        assert 0.5 * 29 - 1e-9 <= crop.times[-1] - crop.times[0] <= 29
    # too few frames to speed up: the factor shrinks to fit
    short = Speed(factor=(2.0, 2.0))(Span(np.arange(0, 30, dtype=float), 0.0, 39.0), rng)
    assert short.times[0] == 0 and short.times[-1] == pytest.approx(39)


def test_reading_between_frames_does_not_blend_in_missing_joints():
    frames = np.zeros((3, 2, 3))
    frames[:, :, 0] = [[0, 10], [2, 20], [4, 30]]
    frames[:, :, 2] = [[1, 0.9], [1, 0.0], [0.5, 0.9]]
    out = interpolate_keypoints(frames, np.array([0.5, 1.25, 1.75]))
    np.testing.assert_allclose(out[:, 0, 0], [1.0, 2.5, 3.5])  # joint 0: linear
    np.testing.assert_allclose(out[:, 0, 2], [1.0, 0.5, 0.5])  # with the lower confidence
    np.testing.assert_allclose(out[:, 1, 0], [20, 20, 30])  # joint 1 missing at frame 1: nearest
    np.testing.assert_allclose(out[:, 1, 2], [0.0, 0.0, 0.9])
    np.testing.assert_array_equal(
        interpolate_keypoints(frames, np.arange(3.0)), frames
    )  # on frames: exact


# -- the config ---------------------------------------------------------------------------------


def test_the_config_builds_the_pipeline_in_order():
    pipe = build_pipeline(ALL)
    assert pipe.names() == [t["name"] for t in ALL]
    assert [t.name for t in pipe.temporal] == ["speed", "crop"]
    assert pipe.transforms[4] == Scale(factor=(0.9, 1.1))
    assert build_pipeline(None) is None and build_pipeline([]) is None


@pytest.mark.parametrize(
    "config, message",
    [
        ([{"name": "twirl"}], r"augment\[0\]: unknown transform 'twirl'; expected one of \['crop'"),
        ([{"name": "rotate", "degree": 5}], r"augment\[0\] \(rotate\): unknown field 'degree'"),
        (
            [{"name": "mirror"}, {"name": "rotate", "degrees": 400}],
            r"augment\[1\]: rotate: field 'degrees' is 400",
        ),
        (
            [{"name": "scale", "factor": [1.2, 0.8]}],
            r"augment\[0\]: scale: field 'factor' is \(1.2, 0.8\)",
        ),
        (
            [{"name": "scale", "factor": 1.1}],
            r"scale: field 'factor' is 1.1; expected \[low, high\]",
        ),
        ([{"name": "dropout", "rate": 1.0}], r"dropout: field 'rate' is 1.0"),
        ([{"name": "mirror", "p": "often"}], r"mirror: field 'p' is 'often'"),
        ([{"name": "noise", "std": -1}], r"noise: field 'std' is -1"),
        ([{"name": "crop", "min_ratio": 0}], r"crop: field 'min_ratio' is 0"),
        (
            [{"name": "rotate"}, {"name": "speed"}],
            r"augment\[1\] \(speed\): temporal transforms .* before",
        ),
        ([{"degrees": 5}], r"augment\[0\]=.*expected a mapping with a 'name'"),
        ({"name": "rotate"}, r"expected a list of transforms"),
    ],
)
def test_a_bad_config_is_one_clear_error(config, message):
    with pytest.raises(ConfigError, match=message) as err:
        build_pipeline(config)
    assert "\n" not in str(err.value) and str(err.value).startswith("data: augment")


def test_the_datamodules_check_the_config_without_reading_data(tmp_path):
    from lbp_motion.datamodules.emopain import EmoPainDataModule

    with pytest.raises(ConfigError, match=r"augment\[0\]: unknown transform"):
        TUGDataModule(str(tmp_path), augment=[{"name": "twirl"}])
    with pytest.raises(ConfigError, match="augment and balance='smote' cannot be combined"):
        TUGDataModule(str(tmp_path), augment=[{"name": "mirror"}], balance="smote")
    with pytest.raises(ConfigError, match="rotate moves joints, but features='emg'"):
        EmoPainDataModule(str(tmp_path), features="emg", augment=[{"name": "rotate"}])
    with pytest.raises(ConfigError, match="joint_angles=True"):
        EmoPainDataModule(str(tmp_path), joint_angles=True, augment=[{"name": "noise"}])
    with pytest.raises(ConfigError, match="speed resamples time"):
        EmoPainDataModule(str(tmp_path), frame_protective=True, augment=[{"name": "speed"}])
    EmoPainDataModule(str(tmp_path), features="emg", augment=[{"name": "crop"}])  # time only: fine


# -- TUG ---------------------------------------------------------------------------------------------


def tug(root, augment=ALL, **kw) -> TUGDataModule:
    dm = TUGDataModule(str(root), window=30, stride=15, batch_size=16, augment=augment, **kw)
    dm.setup("fit")
    return dm


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tug_training_items_change_but_keep_labels_and_ids(tiny_tug):
    dm = tug(tiny_tug)
    train, real = dm._datasets["train"], dm.real_train_dataset()
    assert isinstance(train, AugmentedDataset) and train.base is real and len(train) == len(real)
    np.testing.assert_array_equal(train.window_labels(), real.window_labels())
    changed = 0
    for i in range(len(real)):
        a, b = train[(0, i)], real[i]
        assert a["x"].shape == b["x"].shape and a["x"].dtype == b["x"].dtype
        for key in ("y", "recording", "start"):
            assert torch.equal(a[key], b[key]), key
        changed += not torch.equal(a["x"], b["x"])
        # the frame mask is that of the augmented joints (visible flag channel)
        assert torch.equal(a["mask"], a["x"].reshape(30, -1, 3)[..., 2].bool().any(dim=1))
    assert changed == len(real)
    assert same(real[0], real[0]) and real._rng is None  # the base stays plain


def test_tug_mirror_in_the_dataset_reflects_the_normalised_skeleton(tiny_tug):
    dm = tug(tiny_tug, augment=[{"name": "mirror", "p": 1.0}])
    train, real = dm._datasets["train"], dm.real_train_dataset()
    a = train[(0, 2)]["x"].reshape(30, 17, 3).numpy()
    b = real[2]["x"].reshape(30, 17, 3).numpy()
    perm = np.arange(17)
    for i, j in COCO17.flip_pairs:
        perm[i], perm[j] = j, i
    np.testing.assert_allclose(a[..., 0], -b[:, perm, 0], atol=1e-4)  # x' about the mid-hip
    np.testing.assert_allclose(a[..., 1:], b[:, perm, 1:], atol=1e-4)


def test_tug_dropout_masks_the_dropped_joints(tiny_tug):
    dm = tug(tiny_tug, augment=[{"name": "dropout", "rate": 0.5}], min_confidence=0.0)
    train, real = dm._datasets["train"], dm.real_train_dataset()
    a = train[(0, 1)]["x"].reshape(30, 17, 3)
    b = real[1]["x"].reshape(30, 17, 3)
    vis_a, vis_b = a[..., 2].bool(), b[..., 2].bool()
    assert (vis_a <= vis_b).all() and 0.3 < 1 - vis_a.sum() / vis_b.sum() < 0.7
    assert (a[~vis_a] == 0).all()  # a dropped joint is (0, 0, 0) like any missing one
    # every joint of a frame dropped: the frame is masked
    train = tug(tiny_tug, augment=[{"name": "dropout", "rate": 0.9}])._datasets["train"]
    items = [train[(0, i)] for i in range(5)]
    assert not all(item["mask"].all() for item in items)
    for item in items:
        assert torch.equal(item["mask"], item["x"].reshape(30, 17, 3)[..., 2].bool().any(1))


def test_tug_a_padded_short_recording_keeps_its_length_and_its_padding_stays_masked():
    """short_recordings: pad + augmentation: the clip is augmented at its own length
    (the temporal transforms resample within it), then padded and masked as in eval."""
    from lbp_motion.datamodules.tug import PoseWindowDataset

    rng = np.random.default_rng(0)
    short = rng.uniform(100, 200, size=(20, 17, 3)).astype(np.float32)
    short[..., 2] = 0.9
    ds = PoseWindowDataset(
        [short],
        np.array([50.0], np.float32),
        np.array([1]),
        np.array([0]),
        np.array([[0, 0]]),
        layout="coco17",
        window=30,
        min_confidence=0.3,
    )
    plain = ds[0]
    for config in (
        [{"name": "rotate"}, {"name": "dropout", "rate": 0.1}],
        [{"name": "speed", "factor": [0.5, 0.5]}],
    ):
        ds.transform, ds._rng = build_pipeline(config), np.random.default_rng(1)
        assert ds.augment_window(short, 0, 0).shape == (20, 17, 3)
        item = ds[0]
        assert item["x"].shape == plain["x"].shape == (30, 51)
        assert (
            not item["mask"][20:].any() and (item["x"][20:] == 0).all() and item["mask"][:20].all()
        )
        assert not torch.equal(item["x"][:20], plain["x"][:20])


def test_tug_augmentation_is_seeded_per_epoch_and_item(tiny_tug):
    one, two = tug(tiny_tug), tug(tiny_tug)
    torch.manual_seed(0)
    batches_one = [b for b in one.train_dataloader()]
    torch.manual_seed(0)
    batches_two = [b for b in two.train_dataloader()]
    assert all(same(a, b) for a, b in zip(batches_one, batches_two, strict=True))
    ds = one._datasets["train"]
    assert same(ds[(3, 5)], two._datasets["train"][(3, 5)])
    assert not torch.equal(ds[(0, 5)]["x"], ds[(1, 5)]["x"])  # another epoch, another draw
    other = tug(tiny_tug, augment_seed=1)._datasets["train"]
    assert not torch.equal(ds[(0, 5)]["x"], other[(0, 5)]["x"])
    # the sampler hands out (epoch, index) keys; Lightning's set_epoch picks the epoch
    loader = one.train_dataloader()
    loader.sampler.set_epoch(7)
    assert {e for e, _ in loader.sampler} == {7} and sorted(i for _, i in loader.sampler) == list(
        range(len(ds))
    )


def test_tug_augmentation_does_not_depend_on_the_loader_workers(tiny_tug):
    dm = tug(tiny_tug)
    torch.manual_seed(0)
    alone = list(dm.train_dataloader())
    dm.num_workers = 2
    loader = dm.train_dataloader()
    for epoch in range(2):  # persistent workers: the epoch still reaches every item
        loader.sampler.set_epoch(epoch)
        torch.manual_seed(0)
        batches = list(loader)
        assert all(same(a, b) for a, b in zip(alone, batches, strict=True)) == (epoch == 0)


def test_tug_eval_loaders_see_the_original_data(tiny_tug):
    plain, augmented = (
        tug(tiny_tug, augment=None, predict_split="all"),
        tug(tiny_tug, predict_split="all"),
    )
    for name in ("val", "test", "predict"):
        assert not isinstance(augmented._datasets[name], AugmentedDataset)
        loader = getattr(augmented, f"{name}_dataloader")()
        for a, b in zip(loader, getattr(plain, f"{name}_dataloader")(), strict=True):
            assert same(a, b), name
    assert len(augmented._datasets["predict"]) > len(
        augmented._datasets["train"]
    )  # includes train windows, plain


@pytest.mark.e2e
def test_tug_fit_with_augmentation_through_the_cli(tiny_tug, run_lbp, monkeypatch):
    from lbp_motion.datamodules.tug import PoseWindowDataset

    seen: list[tuple[int, bool]] = []
    keys: list[tuple[int, int]] = []
    modules: list[TUGDataModule] = []
    getitem, aug_getitem, setup = (
        PoseWindowDataset.__getitem__,
        AugmentedDataset.__getitem__,
        TUGDataModule.setup,
    )

    def record(self, i):
        seen.append((id(self), self._rng is not None))
        return getitem(self, i)

    def record_key(self, key):
        keys.append(key)
        return aug_getitem(self, key)

    def record_setup(self, stage=None):
        modules.append(self)
        return setup(self, stage)

    monkeypatch.setattr(PoseWindowDataset, "__getitem__", record)
    monkeypatch.setattr(AugmentedDataset, "__getitem__", record_key)
    monkeypatch.setattr(TUGDataModule, "setup", record_setup)
    augment = "[{name: speed, factor: [0.8, 1.25]}, {name: mirror}, {name: rotate, degrees: 10}, {name: dropout, rate: 0.05}]"
    run = run_lbp(
        "fit",
        "--config",
        "experiments/tug/attention_small.yaml",
        "--data.root",
        str(tiny_tug),
        "--data.augment",
        augment,
    )
    assert (run / "metrics.json").is_file()
    dm = modules[0]
    train = dm._datasets["train"]
    assert isinstance(train, AugmentedDataset) and train.pipeline.names() == [
        "speed",
        "mirror",
        "rotate",
        "dropout",
    ]
    # both epochs (TINY_ARGS: 2) augmented, each draw keyed by its epoch
    assert {e for e, _ in keys} == {0, 1} and len(keys) == 2 * len(train)
    by_dataset: dict[int, set[bool]] = {}
    for ident, augmented in seen:
        by_dataset.setdefault(ident, set()).add(augmented)
    assert by_dataset[id(train.base)] == {True}
    for name in ("val", "test"):  # validation and test metrics come from the plain windows
        assert by_dataset[id(dm._datasets[name])] == {False}, name
    assert not all(torch.equal(train[(0, i)]["x"], train.base[i]["x"]) for i in range(4))


# -- EmoPain ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_emopain(tmp_path_factory):
    from lbp_motion.datasets.synthetic import generate_emopain_dataset

    return generate_emopain_dataset(
        tmp_path_factory.mktemp("tiny_emopain_aug"), num_train_patients=2, num_train_controls=1,
        num_val_patients=1, num_val_controls=1, frames_per_file=400, seed=0,
    )  # fmt: skip


def emopain(root, augment, **kw):
    from lbp_motion.datamodules.emopain import EmoPainDataModule

    dm = EmoPainDataModule(str(root), task="protective", augment=augment, **kw)
    dm.setup("fit")
    return dm


def test_emopain_training_samples_move_joints_only(tiny_emopain):
    dm = emopain(
        tiny_emopain, [{"name": "rotate", "degrees": 45}, {"name": "scale", "factor": [0.8, 1.2]}]
    )
    train, real = dm._datasets["train"], dm.real_train_dataset()
    assert isinstance(train, AugmentedDataset)
    mean, std = dm.feature_mean, dm.feature_std
    for i in range(0, len(real), max(1, len(real) // 5)):
        a, b = train[(0, i)], real[i]
        for key in ("y", "aux", "recording", "subject", "start", "mask"):
            assert torch.equal(a[key], b[key]), key
        assert torch.equal(a["x"][:, 66:], b["x"][:, 66:])  # sEMG untouched
        assert not torch.allclose(a["x"][:, :66], b["x"][:, :66])
        m = b["mask"]
        sk_a = Skeleton(
            (a["x"][m, :66].double().numpy() * std[:66] + mean[:66]).reshape(-1, 22, 3),
            np.ones((int(m.sum()), 22)),
        )
        sk_b = Skeleton(
            (b["x"][m, :66].double().numpy() * std[:66] + mean[:66]).reshape(-1, 22, 3),
            np.ones((int(m.sum()), 22)),
        )
        ratio = bone_lengths(sk_a, EMOPAIN22) / bone_lengths(sk_b, EMOPAIN22)
        np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-3)


def test_emopain_mirror_dropout_and_time_and_eval_data(tiny_emopain):
    plain = emopain(tiny_emopain, None)
    dm = emopain(
        tiny_emopain,
        [
            {"name": "crop", "min_ratio": 0.5},
            {"name": "mirror", "p": 1.0},
            {"name": "dropout", "rate": 0.3},
        ],
    )
    train = dm._datasets["train"]
    a, b = train[(0, 0)], dm.real_train_dataset()[0]
    real = int(b["mask"].sum())
    joints = a["x"][:real, :66].reshape(real, 22, 3)
    dropped = (joints == 0).all(dim=-1)
    assert 0.15 < dropped.float().mean() < 0.45 and torch.equal(a["mask"], b["mask"])
    assert (a["x"][real:] == 0).all()  # padding stays padding
    assert train.pipeline.names() == ["crop", "mirror", "dropout"]
    for name in ("val", "test", "predict"):
        assert not isinstance(dm._datasets[name], AugmentedDataset)
        for x, y in zip(
            getattr(dm, f"{name}_dataloader")(), getattr(plain, f"{name}_dataloader")(), strict=True
        ):
            assert same(x, y), name
