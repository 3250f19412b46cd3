"""Differential privacy (lbp_motion.privacy): conversion, clipping, noise, sampling,
accounting, and `lbp fit` with DP on."""

import json
import math

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from lbp_motion.trust import load_checkpoint

pytest.importorskip("opacus")

from opacus.accountants import PRVAccountant, RDPAccountant  # noqa: E402
from opacus.grad_sample import GradSampleHooks  # noqa: E402

from lbp_motion.datamodules.tug import TUGDataModule
from lbp_motion.errors import ConfigError  # noqa: E402
from lbp_motion.models import (  # noqa: E402
    AttentionLSTMClassifier,
    BiLSTMClassifier,
    LSTMClassifier,
    LSTMDNNClassifier,
    TransformerClassifier,
)
from lbp_motion.privacy import DifferentialPrivacy, epsilon_of, group_privacy, make_private_model  # noqa: E402
from lbp_motion.privacy.convert import restore_sample_order  # noqa: E402
from lbp_motion.privacy.optimizer import UnitDPOptimizer  # noqa: E402
from lbp_motion.privacy.sampling import GROUP_KEY, PoissonBatchSampler, poisson_loader  # noqa: E402
from lbp_motion.tasks import ClassificationTask  # noqa: E402
from lbp_motion.training_plan import TrainingPlanStrategy  # noqa: E402
from tests.conftest import TINY_ARGS, TINY_TRAINER, TINY_TRANSFORMER, TINY_TUG  # noqa: E402

MODELS = {
    "transformer": lambda: TransformerClassifier(
        6, 3, d_model=16, num_layers=2, num_heads=2, dropout=0.0
    ),
    "lstm": lambda: LSTMClassifier(6, 3, hidden_sizes=(8, 4), dropout=0.0),
    "bilstm": lambda: BiLSTMClassifier(6, 3, hidden_sizes=(8, 4), dropout=0.0),
    "attention_lstm": lambda: AttentionLSTMClassifier(
        6, 3, hidden_sizes=(8,), attention_size=4, dense_size=4, dropout=0.0
    ),
    "lstm_dnn": lambda: LSTMDNNClassifier(6, 3, hidden_sizes=(8,), dense_sizes=(8,), dropout=0.0),
}


def _inputs(b=5, t=12):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, t, 6, generator=g)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 8:] = False  # trailing padding
    mask[2, :3] = False  # leading masked frames
    return x, mask


# -- conversion ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_converted_model_computes_the_same_function_and_keeps_its_state_dict(name):
    torch.manual_seed(0)
    plain = MODELS[name]().eval()
    private = make_private_model(plain).eval()
    kinds = {type(m).__name__ for m in private.modules()}
    assert "LSTM" not in kinds and "MultiheadAttention" not in kinds
    assert kinds & {"DPLSTM", "AlignedDPMultiheadAttention"}
    x, mask = _inputs()
    torch.testing.assert_close(private(x, mask), plain(x, mask), atol=1e-5, rtol=0)
    with torch.no_grad():  # eval + no grad: where nn.Transformer* would take its fused kernel
        torch.testing.assert_close(private(x, mask), plain(x, mask), atol=1e-5, rtol=0)
    # the same keys in the same order: DP checkpoints and FedAvg/Flower arrays are plain ones
    assert list(private.state_dict()) == list(plain.state_dict())
    fresh = MODELS[name]().eval()
    fresh.load_state_dict(private.state_dict())
    torch.testing.assert_close(fresh(x, mask), plain(x, mask), atol=1e-6, rtol=0)
    other = make_private_model(MODELS[name]()).eval()
    other.load_state_dict(plain.state_dict())
    torch.testing.assert_close(other(x, mask), plain(x, mask), atol=1e-5, rtol=0)


def test_converted_transformer_never_bypasses_its_attention_submodules():
    private = make_private_model(MODELS["transformer"]()).eval()
    seen = []
    private.encoder.layers[0].self_attn.qlinear.register_forward_hook(lambda *a: seen.append(1))
    x, mask = _inputs()
    with torch.no_grad():
        private(x, mask)
    assert seen  # the fused nn.TransformerEncoderLayer kernel would skip qlinear


@pytest.mark.parametrize("name", ["transformer", "lstm", "bilstm", "attention_lstm", "lstm_dnn"])
def test_per_sample_gradients_of_converted_models_are_each_samples_own(name):
    torch.manual_seed(0)
    model = make_private_model(MODELS[name]()).train()
    x, mask = _inputs(b=4)
    y = torch.tensor([0, 1, 2, 1])
    expected = []
    for i in range(4):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1], mask[i : i + 1]), y[i : i + 1]).backward()
        expected.append([p.grad.clone() for p in model.parameters()])
    model.zero_grad()
    hooks = GradSampleHooks(model, batch_first=True, loss_reduction="mean")
    nn.functional.cross_entropy(model(x, mask), y).backward()
    restore_sample_order(model.parameters())  # what UnitDPOptimizer does before clipping
    for j, p in enumerate(model.parameters()):
        torch.testing.assert_close(
            p.grad_sample, torch.stack([e[j] for e in expected]), atol=1e-5, rtol=1e-4
        )
    hooks.cleanup()


# -- clipping and noise ----------------------------------------------------------------------------
def _per_sample_setup(seed=0, b=6):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    x = torch.randn(b, 5) * 10
    y = torch.randint(0, 3, (b,))
    return model, x, y


def _one_step(model, x, y, *, clip, sigma, expected, groups=None, seed=0):
    start = [p.detach().clone() for p in model.parameters()]
    hooks = GradSampleHooks(model, batch_first=True, loss_reduction="mean")
    opt = UnitDPOptimizer(
        torch.optim.SGD(model.parameters(), lr=1.0),
        noise_multiplier=sigma,
        max_grad_norm=clip,
        expected_batch_size=expected,
    )
    opt.groups = groups
    torch.manual_seed(seed)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    hooks.cleanup()
    return torch.cat(
        [(s - p.detach()).flatten() for s, p in zip(start, model.parameters())]
    )  # = -update / lr


def _manual_sample_grads(model, x, y):
    grads = []
    for i in range(len(y)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    model.zero_grad()
    return torch.stack(grads)


def _clipped(g, c):
    return g * (c / (g.norm(dim=1, keepdim=True) + 1e-6)).clamp(max=1.0)


def test_each_windows_gradient_is_clipped_before_averaging():
    model, x, y = _per_sample_setup()
    g = _manual_sample_grads(model, x, y)
    clip = 1e-3
    assert (g.norm(dim=1) > 10 * clip).all()  # every sample is clipped
    step = _one_step(model, x, y, clip=clip, sigma=0.0, expected=len(y))
    torch.testing.assert_close(step, _clipped(g, clip).sum(0) / len(y), atol=2e-7, rtol=1e-4)
    assert step.norm() <= clip * (1 + 1e-5)


def test_subject_unit_clips_each_subjects_mean_gradient_once():
    model, x, y = _per_sample_setup(b=6)
    g = _manual_sample_grads(model, x, y)
    groups = torch.tensor([0, 0, 0, 4, 4, 9])  # three subjects with 3, 2 and 1 windows
    clip = 1e-3
    step = _one_step(model, x, y, clip=clip, sigma=0.0, expected=3, groups=groups)
    means = torch.stack([g[groups == s].mean(0) for s in (0, 4, 9)])
    torch.testing.assert_close(step, _clipped(means, clip).sum(0) / 3, atol=2e-7, rtol=1e-4)
    assert step.norm() <= clip * (1 + 1e-5)  # 3 units of norm <= clip, divided by 3
    # window-level clipping of the same batch is a different update
    model2, _, _ = _per_sample_setup(b=6)
    assert not torch.allclose(_one_step(model2, x, y, clip=clip, sigma=0.0, expected=3), step)


def test_noise_has_the_calibrated_scale_and_depends_on_the_seed():
    def step(seed, sigma=2.0):
        model, x, y = _per_sample_setup()
        return _one_step(model, x, y, clip=1.0, sigma=sigma, expected=4, seed=seed)

    a, b, a_again = step(0), step(1), step(0)
    torch.testing.assert_close(a, a_again)
    assert not torch.allclose(a, b)
    noise = a - step(0, sigma=0.0)
    # per coordinate N(0, (sigma * clip / expected)^2) = N(0, 0.5^2); 35 parameters
    assert 0.3 < noise.std().item() < 0.7


def test_an_empty_poisson_batch_is_a_noise_only_step_that_counts():
    model, _, _ = _per_sample_setup()
    hooks = GradSampleHooks(model, batch_first=True, loss_reduction="mean")
    opt = UnitDPOptimizer(
        torch.optim.SGD(model.parameters(), lr=1.0),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        expected_batch_size=4,
    )
    counted = []
    opt.attach_step_hook(lambda o: counted.append(1))
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    opt.step()  # no backward, not empty: no step, no privacy cost
    assert not counted and all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    opt.empty_batch = True
    opt.step()
    assert counted == [1] and not all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    hooks.cleanup()


# -- Poisson sampling -------------------------------------------------------------------------------
def test_poisson_sampler_includes_units_at_rate_q_and_keeps_subjects_whole():
    groups = [[0, 1, 2], [3], [4, 5], [6, 7, 8, 9]]
    sampler = PoissonBatchSampler(
        groups, 0.3, steps=4000, generator=torch.Generator().manual_seed(0)
    )
    hits = torch.zeros(4)
    sizes = []
    for batch in sampler:
        sizes.append(len(batch))
        for u, members in enumerate(groups):
            inside = [i in batch for i in members]
            assert all(inside) or not any(
                inside
            )  # a subject comes with all its windows or not at all
            hits[u] += inside[0]
    assert torch.allclose(hits / 4000, torch.full((4,), 0.3), atol=0.03)
    assert 0 in sizes  # batches may be empty
    capped = PoissonBatchSampler(
        groups, 1.0, steps=3, generator=torch.Generator().manual_seed(0), max_per_group=2
    )
    assert all(len(b) == 2 + 1 + 2 + 2 for b in capped)


def test_poisson_loader_tags_units_and_yields_empty_batches_with_the_right_fields():
    data = [{"x": torch.full((3,), float(i)), "y": torch.tensor(i % 2)} for i in range(6)]
    loader = poisson_loader(
        data, ["a", "a", "b", "b", "b", "c"], 0.2, torch.Generator().manual_seed(3)
    )
    assert len(loader) == 5  # ceil(1 / q) steps per epoch
    batches = [b for _ in range(20) for b in loader]
    assert any(len(b["y"]) == 0 for b in batches)
    for b in batches:
        assert set(b) == {"x", "y", GROUP_KEY} and b["x"].shape[1:] == (3,)
        for unit, size in zip(*torch.unique(b[GROUP_KEY], return_counts=True)):
            assert size == {0: 2, 1: 3, 2: 1}[int(unit)]


# -- accounting -------------------------------------------------------------------------------------
def test_epsilon_grows_with_steps_shrinks_with_noise_and_is_opacus_accountants():
    e10, e40 = epsilon_of([(1.0, 0.1, 10)], 1e-5), epsilon_of([(1.0, 0.1, 40)], 1e-5)
    assert 0 < e10 < e40
    assert epsilon_of([(2.0, 0.1, 40)], 1e-5) < e40
    rdp = RDPAccountant()
    for _ in range(40):
        rdp.step(noise_multiplier=1.0, sample_rate=0.1)
    assert e40 == pytest.approx(rdp.get_epsilon(delta=1e-5), rel=1e-12)
    prv = PRVAccountant()
    prv.history = [(1.0, 0.1, 40)]
    assert epsilon_of([(1.0, 0.1, 40)], 1e-5, "prv") == pytest.approx(
        prv.get_epsilon(delta=1e-5), rel=1e-6
    )
    assert group_privacy(1.0, 1e-6, 3) == pytest.approx((3.0, 3 * math.exp(2) * 1e-6))


def test_options_are_checked_in_one_line():
    with pytest.raises(ConfigError, match="exactly one of noise_multiplier and target_epsilon"):
        DifferentialPrivacy()
    with pytest.raises(ConfigError, match="delta=2.*max_grad_norm=0"):
        DifferentialPrivacy(noise_multiplier=1.0, delta=2, max_grad_norm=0)


# -- fits ---------------------------------------------------------------------------------------------
def _fit(root, dp, *, epochs=2, batch_size=16, **dm_kwargs):
    pl.seed_everything(0)
    dm = TUGDataModule(str(root), stride=15, batch_size=batch_size, **dm_kwargs)
    task = ClassificationTask(
        model=lambda f, c: TransformerClassifier(f, c, **TINY_TRANSFORMER, dropout=0.0),
        data_spec=dm.spec,
    )
    trainer = pl.Trainer(
        **TINY_TRAINER,
        max_epochs=epochs,
        enable_checkpointing=False,
        limit_val_batches=0,
        callbacks=[dp],
        strategy=TrainingPlanStrategy(),
    )
    trainer.fit(task, datamodule=dm)
    return dm, task, trainer


@pytest.mark.e2e
def test_reported_epsilon_is_opacus_accountant_for_the_runs_q_sigma_and_steps(tiny_tug):
    dp = DifferentialPrivacy(noise_multiplier=1.3, max_grad_norm=1.0, delta=1e-5)
    dm, _, trainer = _fit(tiny_tug, dp, epochs=3)
    n = len(dm._datasets["train"])
    q, steps = 16 / n, 3 * math.ceil(n / 16)
    expected = RDPAccountant()
    for _ in range(steps):
        expected.step(noise_multiplier=1.3, sample_rate=q)
    summary = dp.run_summary()
    assert summary["dp/steps"] == steps and summary["dp/sample_rate"] == pytest.approx(q)
    assert summary["dp/epsilon"] == pytest.approx(expected.get_epsilon(delta=1e-5), rel=1e-9)
    assert float(trainer.callback_metrics["dp/epsilon"]) == pytest.approx(
        summary["dp/epsilon"], rel=1e-6
    )


@pytest.mark.e2e
def test_target_epsilon_ends_at_or_just_under_the_target(tiny_tug):
    dp = DifferentialPrivacy(target_epsilon=3.0, delta=1e-5, accountant="rdp")
    _fit(tiny_tug, dp, epochs=2)
    summary = dp.run_summary()
    assert 2.9 <= summary["dp/epsilon"] <= 3.0
    assert summary["dp/noise_multiplier"] > 0 and summary["dp/target_epsilon"] == 3.0


@pytest.mark.e2e
def test_subject_unit_protects_subjects_and_window_unit_reports_only_a_group_bound(tiny_tug):
    window = DifferentialPrivacy(noise_multiplier=1.0, unit="window")
    dm, _, _ = _fit(tiny_tug, window, epochs=1)
    subject = DifferentialPrivacy(noise_multiplier=1.0, unit="subject", max_windows_per_subject=4)
    _fit(tiny_tug, subject, epochs=1)
    w, s = window.run_summary(), subject.run_summary()
    subjects = dm.train_subject_info()["subject"]
    k = max(list(subjects).count(x) for x in set(subjects))
    assert w["dp/units"] == len(subjects) and s["dp/units"] == len(set(subjects))
    # same q (batch_size / windows), sigma and steps: the same number, for different units
    assert s["dp/sample_rate"] == w["dp/sample_rate"] and s["dp/steps"] == w["dp/steps"]
    assert s["dp/epsilon"] == pytest.approx(w["dp/epsilon"])
    assert "one subject" in s["dp/guarantee"] and "does not protect a subject" in w["dp/guarantee"]
    # a window-level run guarantees a subject only k * epsilon, at a delta of k e^((k-1) eps) delta
    assert w["dp/max_windows_per_subject"] == k
    assert w["dp/group_epsilon"] == pytest.approx(k * w["dp/epsilon"])
    assert (
        w["dp/group_delta"] is None or w["dp/group_delta"] > 1
    )  # no subject-level guarantee at all
    assert "dp/group_epsilon" not in s


@pytest.mark.e2e
def test_dp_refuses_settings_that_break_its_guarantee(tiny_tug):
    with pytest.raises(ConfigError, match="data.balance='undersample'"):
        _fit(tiny_tug, DifferentialPrivacy(noise_multiplier=1.0), epochs=1, balance="undersample")
    with pytest.raises(ConfigError, match="data.augment: the Poisson loader"):
        _fit(
            tiny_tug,
            DifferentialPrivacy(noise_multiplier=1.0),
            epochs=1,
            augment=[{"name": "mirror"}],
        )


@pytest.mark.e2e
def test_lbp_fit_with_dp_writes_epsilon_to_metrics_json_and_a_plain_checkpoint(
    run_lbp, tiny_tug, tmp_path
):
    config = tmp_path / "dp.yaml"
    config.write_text(
        json.dumps(
            {
                "trainer": {
                    "callbacks": [
                        {
                            "class_path": "lbp_motion.privacy.DifferentialPrivacy",
                            "init_args": {
                                "noise_multiplier": 1.0,
                                "max_grad_norm": 1.0,
                                "delta": 1e-5,
                                "unit": "subject",
                            },
                        }
                    ]
                }
            }
        )
    )
    run = run_lbp(
        "fit",
        "--config",
        "experiments/tug/attention_small.yaml",
        "--config",
        str(config),
        "--data.root",
        str(tiny_tug),
        "--data.augment",
        "null",
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert (
        metrics["dp/epsilon"] > 0
        and metrics["dp/unit"] == "subject"
        and metrics["dp/delta"] == 1e-5
    )
    assert "test/accuracy" in metrics
    per_epoch = (run / "metrics.csv").read_text().splitlines()
    column = per_epoch[0].split(",").index("dp/epsilon")
    values = [float(r.split(",")[column]) for r in per_epoch[1:] if r.split(",")[column]]
    assert len(values) == 2 and values[0] < values[1] == pytest.approx(
        metrics["dp/epsilon"], rel=1e-6
    )
    # the DP-trained checkpoint is a plain model's: it loads without any DP option
    ckpt = load_checkpoint(metrics["best_checkpoint"])
    dm = TUGDataModule(str(tiny_tug), stride=15)
    plain = ClassificationTask(
        model=lambda f, c: TransformerClassifier(f, c, **TINY_TRANSFORMER),
        data_spec=dm.spec,
    )
    plain.load_state_dict(ckpt["state_dict"])


@pytest.mark.e2e
def test_state_file_carries_the_accountant_across_fits(tiny_tug, tmp_path):
    """A Flower client runs one fit per round with a new callback each time."""
    state = tmp_path / "client" / "dp_state.json"
    for _ in range(2):
        dp = DifferentialPrivacy(noise_multiplier=1.0, state_file=str(state))
        _fit(tiny_tug, dp, epochs=1)
    one_run = DifferentialPrivacy(noise_multiplier=1.0)
    _fit(tiny_tug, one_run, epochs=2)
    assert dp.run_summary()["dp/steps"] == one_run.run_summary()["dp/steps"] > 0
    assert dp.run_summary()["dp/epsilon"] == pytest.approx(one_run.run_summary()["dp/epsilon"])
    assert json.loads(state.read_text())["parties"]["-1"]["history"]


@pytest.mark.e2e
def test_resumed_centralised_dp_run_ends_where_an_uninterrupted_one_does(tiny_tug, tmp_path):
    from lbp_motion.cli import main
    from tests.conftest import TINY_ARGS

    fixed_noise = tmp_path / "noise.yaml"
    fixed_noise.write_text(
        json.dumps(
            {
                "trainer": {
                    "callbacks": [
                        {
                            "class_path": "lbp_motion.privacy.DifferentialPrivacy",
                            "init_args": {"noise_multiplier": 1.0, "target_epsilon": None},
                        }
                    ]
                }
            }
        )
    )
    base = [
        "--config",
        "experiments/tug_dp.yaml",
        "--config",
        str(fixed_noise),
        "--data.root",
        str(tiny_tug),
        *TINY_ARGS,
        "--model.init_args.model.init_args.dropout",
        "0.0",
        "--test_after_fit",
        "false",
    ]
    assert (
        main(["fit", *base, "--trainer.max_epochs", "3", "--run.out_dir", str(tmp_path / "full")])
        == 0
    )
    assert (
        main(["fit", *base, "--trainer.max_epochs", "2", "--run.out_dir", str(tmp_path / "half")])
        == 0
    )
    half = tmp_path / "half" / "tug-dp" / "version_0" / "checkpoints" / "last.ckpt"
    assert (
        main(
            [
                "fit",
                *base,
                "--trainer.max_epochs",
                "3",
                "--run.out_dir",
                str(tmp_path / "half"),
                "--ckpt_path",
                str(half),
            ]
        )
        == 0
    )
    runs = {
        name: tmp_path / name / "tug-dp" / version
        for name, version in (("full", "version_0"), ("half", "version_1"))
    }
    full, resumed = (json.loads((r / "metrics.json").read_text()) for r in runs.values())
    assert resumed["dp/steps"] == full["dp/steps"] and resumed["dp/epsilon"] == pytest.approx(
        full["dp/epsilon"]
    )
    a, b = (load_checkpoint(r / "checkpoints" / "last.ckpt")["state_dict"] for r in runs.values())
    for key, value in a.items():  # the same Poisson batches and the same noise after resuming
        torch.testing.assert_close(b[key], value, msg=key)


@pytest.mark.e2e
def test_a_private_fit_is_tested_on_each_site_afterwards(tmp_path):
    """The per-site test after fit copies the model; Opacus's optimiser, which a private
    fit leaves behind, cannot be copied (the GPU check found `lbp fit --config
    experiments/tug_dp.yaml` failing there)."""
    from lbp_motion.cli import main
    from lbp_motion.datasets.synthetic import generate_tug_dataset

    root = generate_tug_dataset(tmp_path / "data", **TINY_TUG["sites"])
    argv = ["fit", "--config", "experiments/tug_dp.yaml", "--data.root", str(root), *TINY_ARGS,
            "--trainer.max_epochs", "1", "--run.out_dir", str(tmp_path / "runs")]  # fmt: skip
    assert main(argv) == 0
    rows = (tmp_path / "runs" / "tug-dp" / "version_0" / "sites.csv").read_text().splitlines()
    assert len(rows) > 1 and rows[0].startswith("site")
