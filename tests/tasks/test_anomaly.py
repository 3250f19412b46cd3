"""AnomalyTask: the two scores (masking), threshold selection on the task, the decision,
the threshold in the checkpoint, and end-to-end runs of both scorers from their configs."""

import csv
import json
import math

import pytest
import torch

from lbp_motion.errors import ConfigError
from lbp_motion.models import LSTMAutoencoder, LSTMDNNClassifier
from lbp_motion.tasks import AnomalyTask
from lbp_motion.tasks.anomaly import decision_probs, frame_normal_nll, reconstruction_error
from lbp_motion.trust import load_checkpoint
from tests.conftest import EMOPAIN_ARGS

F, T = 5, 8
SPEC = {"num_features": F, "classes": ["no_pain", "low", "high"], "aux_classes": ["a", "b", "c"]}

#: tests/conf/tiny_emopain.yaml: tiny synthetic data, one quiet CPU epoch
FAST = EMOPAIN_ARGS


def loss_task(**kw):
    torch.manual_seed(0)
    return AnomalyTask(
        scorer="loss",
        data_spec=SPEC,
        anomaly_name="pain",
        model=lambda f, c: LSTMDNNClassifier(
            f, c, hidden_sizes=(8,), dense_sizes=(8,), dropout=0.0
        ),
        **kw,
    ).eval()


def recon_task(**kw):
    torch.manual_seed(0)
    return AnomalyTask(
        scorer="reconstruction",
        data_spec=SPEC,
        model=lambda f, c: LSTMAutoencoder(f, c, hidden_sizes=(8,), latent_size=4),
        **kw,
    ).eval()


def batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, T, F, generator=g)
    lengths = torch.tensor([T, T - 2, 3, T, 5, 1][:n])
    mask = torch.arange(T).expand(n, T) < lengths.unsqueeze(1)
    x[~mask] = 0
    return {
        "x": x,
        "mask": mask,
        "y": torch.tensor([0, 1, 2, 0, 0, 2][:n]),
        "aux": torch.tensor([0, 1, 2, 0, 1, 2][:n]),
        "recording": torch.arange(n),
        "start": torch.zeros(n, dtype=torch.long),
    }


def test_loss_score_is_the_mean_negative_log_p_normal_over_real_frames_only():
    # two frames real, one padded with logits that would dominate the mean if counted
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [0.0, 50.0]]])
    mask = torch.tensor([[True, True, False]])
    expected = (-math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(1 / (1 + math.e))) / 2
    assert frame_normal_nll(logits, mask).item() == pytest.approx(expected, rel=1e-6)
    assert frame_normal_nll(logits, None).item() > 10  # the padded frame counted: very different
    # normal_index picks the column
    assert frame_normal_nll(logits[:, :1], None, normal_index=1).item() == pytest.approx(
        math.log(math.exp(2) + 1), rel=1e-6
    )


def test_reconstruction_error_averages_real_frames_and_features():
    x = torch.zeros(1, 3, 2)
    recon = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert reconstruction_error(recon, x, mask).item() == pytest.approx((1.0 + 2.0) / 2)


@pytest.mark.parametrize("make", [loss_task, recon_task])
def test_task_score_ignores_padded_frames(make):
    task, b = make(), batch()
    scores = task(b["x"], b["mask"])
    assert scores.shape == (6,) and torch.isfinite(scores).all()
    noisy = b["x"].clone()
    noisy[~b["mask"]] = 1e3  # garbage in the padding must not change any score
    torch.testing.assert_close(task(noisy, b["mask"]), scores)
    if task.hparams.scorer == "loss":
        expected = frame_normal_nll(task.detector.model.frame_logits(b["x"], b["mask"]), b["mask"])
        torch.testing.assert_close(scores, expected)


def test_binary_labels_and_class_names():
    task = loss_task()
    assert task.classes == ["no_pain", "pain"]
    assert task.binary_labels(torch.tensor([0, 1, 2, 0])).tolist() == [0, 1, 1, 0]
    prot = AnomalyTask(
        data_spec={"num_features": F, "classes": ["non_protective", "protective"]},
        exercise_weight=0,
    )
    assert prot.classes == ["non_protective", "protective"]


SCORES = torch.tensor([0.1, 0.2, 0.3, 0.8, 0.9, 0.5])
LABELS = torch.tensor([0, 0, 0, 1, 1, 0])


@pytest.mark.parametrize(
    ("rule", "q", "expected"),
    [
        ("percentile", 50.0, 0.25),
        ("percentile", 100.0, 0.5),
        ("f1", 95.0, 0.8),
        ("youden", 95.0, 0.8),
    ],
)
def test_each_rule_sets_the_expected_threshold(rule, q, expected):
    # normal scores 0.1 0.2 0.3 0.5: median 0.25, max 0.5; the anomalies 0.8 0.9 separate
    task = loss_task(threshold_rule=rule, threshold_q=q)
    task.update_threshold(SCORES, LABELS)
    assert task.threshold == pytest.approx(expected)
    assert float(task.detector.threshold) == pytest.approx(expected)


def test_a_rule_that_cannot_apply_keeps_the_threshold():
    task = loss_task(threshold_rule="f1")
    task.detector.threshold.fill_(0.42)
    with pytest.warns(UserWarning, match="keeping"):
        task.update_threshold(torch.tensor([0.1, 0.2]), torch.tensor([0, 0]))
    assert task.threshold == pytest.approx(0.42)


def test_decision_probs_argmax_is_score_at_or_above_threshold():
    scores = torch.tensor([0.1, 0.5, 0.5000001, 0.9, 0.4999])
    probs = decision_probs(scores, 0.5)
    assert probs.argmax(dim=1).tolist() == [0, 1, 1, 1, 0]
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(5))


def test_reconstruction_on_normal_only_ignores_anomalous_samples():
    task, b = recon_task(train_on="normal"), batch()
    labels = task.binary_labels(b["y"])
    base = task.detector.losses(b, labels, 1.0, normal_only=True)["loss"]
    changed = dict(b, x=b["x"].clone(), aux=b["aux"].clone())
    changed["x"][labels == 1] += 5.0
    changed["aux"][labels == 1] = 0
    torch.testing.assert_close(
        task.detector.losses(changed, labels, 1.0, normal_only=True)["loss"], base
    )
    assert not torch.allclose(
        task.detector.losses(changed, labels, 1.0, normal_only=False)["loss"],
        task.detector.losses(b, labels, 1.0, normal_only=False)["loss"],
    )


def test_bad_configurations_are_config_errors():
    with pytest.raises(ConfigError, match="train_on='normal'"):
        AnomalyTask(scorer="loss", train_on="normal", data_spec=SPEC)
    with pytest.raises(ConfigError, match="threshold_rule"):
        AnomalyTask(threshold_rule="median", data_spec=SPEC)
    with pytest.raises(ConfigError, match="reconstruct"):
        AnomalyTask(
            scorer="reconstruction",
            data_spec=SPEC,
            model=lambda f, c: LSTMDNNClassifier(f, c, hidden_sizes=(4,), dense_sizes=(4,)),
        )


@pytest.mark.e2e
@pytest.mark.slow
def test_loss_scorer_config_fits_tests_and_keeps_its_threshold(run_lbp):
    small = [
        "--model.init_args.model.init_args.hidden_sizes",
        "[8]",
        "--model.init_args.model.init_args.dense_sizes",
        "[8]",
    ]
    run = run_lbp(
        "fit",
        "--config",
        "experiments/emopain/anomaly/protective_loss.yaml",
        *small,
        *FAST,
        tiny=False,
    )
    metrics = json.loads((run / "metrics.json").read_text())
    for key in (
        "val/threshold",
        "test/threshold",
        "test/auroc",
        "test/accuracy",
        "test/mcc",
        "test/f1_macro",
        "test/f1/non_protective",
        "test/f1/protective",
        "val/f1_macro",
    ):
        assert key in metrics, key
    for png in ("roc_test.png", "scores_test.png", "confusion_test.png"):
        assert (run / png).stat().st_size > 0, png
    assert (run / "scores_test.csv").is_file()
    ckpt = load_checkpoint(metrics["best_checkpoint"])
    saved = float(ckpt["state_dict"]["detector.threshold"])
    assert ckpt["lbp_motion"]["threshold"]["value"] == pytest.approx(saved)
    assert ckpt["lbp_motion"]["threshold"]["rule"] == "f1"
    assert metrics["test/threshold"] == pytest.approx(saved)  # test used the checkpoint's threshold

    # test and predict from the checkpoint alone use the same threshold
    tested = run_lbp(
        "test",
        "--ckpt_path",
        metrics["best_checkpoint"],
        "--run.wandb",
        "disabled",
        "--trainer.accelerator",
        "cpu",
        tiny=False,
    )
    again = json.loads((tested / "metrics.json").read_text())
    assert again["test/threshold"] == pytest.approx(saved)
    assert again["test/accuracy"] == pytest.approx(metrics["test/accuracy"])


@pytest.mark.e2e
@pytest.mark.slow
def test_reconstruction_scorer_config_on_pain_fits_with_figures(run_lbp):
    small = [
        "--model.init_args.model.init_args.hidden_sizes",
        "[8]",
        "--model.init_args.model.init_args.latent_size",
        "4",
    ]
    run = run_lbp(
        "fit",
        "--config",
        "experiments/emopain/anomaly/pain_reconstruction.yaml",
        *small,
        *FAST,
        tiny=False,
    )
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("test/threshold", "test/auroc", "test/f1/no_pain", "test/f1/pain", "test/mcc"):
        assert key in metrics, key
    assert (run / "roc_test.png").is_file() and (run / "scores_test.png").is_file()


@pytest.mark.e2e
@pytest.mark.slow
def test_test_and_predict_use_the_threshold_stored_in_the_checkpoint(run_lbp, tmp_path):
    small = [
        "--model.init_args.model.init_args.hidden_sizes",
        "[8]",
        "--model.init_args.model.init_args.dense_sizes",
        "[8]",
    ]
    run = run_lbp(
        "fit",
        "--config",
        "experiments/emopain/anomaly/protective_loss.yaml",
        *small,
        *FAST,
        "--test_after_fit",
        "false",
        tiny=False,
    )
    ckpt = load_checkpoint(json.loads((run / "metrics.json").read_text())["best_checkpoint"])
    ckpt["state_dict"]["detector.threshold"] = torch.tensor(1e6)  # nothing scores this high
    edited = tmp_path / "edited.ckpt"
    torch.save(ckpt, edited)
    common = ["--ckpt_path", str(edited), "--run.wandb", "disabled", "--trainer.accelerator", "cpu"]
    tested = json.loads((run_lbp("test", *common, tiny=False) / "metrics.json").read_text())
    assert tested["test/threshold"] == pytest.approx(1e6)
    assert tested["test/recall/protective"] == 0.0  # every segment called normal
    predicted = run_lbp("predict", *common, tiny=False)
    rows = list(csv.DictReader(open(predicted / "predictions.csv")))
    assert rows and {r["predicted"] for r in rows} == {"non_protective"}
    assert {r["label"] for r in rows} == {"non_protective", "protective"}


@pytest.mark.e2e
@pytest.mark.slow
def test_cross_validation_of_the_pain_detector_pools_its_two_classes(tmp_path):
    from lbp_motion.cli import main

    small = [
        "--model.init_args.model.init_args.hidden_sizes",
        "[8]",
        "--model.init_args.model.init_args.dense_sizes",
        "[8]",
    ]
    # 3 folds: with 2, a fold's training subjects are the two controls only (one class), now refused
    assert (
        main(
            [
                "cv",
                "--config",
                "experiments/emopain/anomaly/pain_loss.yaml",
                "--folds",
                "3",
                "--out_dir",
                str(tmp_path),
                *small,
                *FAST,
            ]
        )
        == 0
    )
    summary = json.loads(next(tmp_path.glob("*/version_0/summary.json")).read_text())
    assert (
        summary["folds"] == 3 and "pooled/f1/pain" in summary and "test/threshold_mean" in summary
    )


def test_autoencoder_reconstructs_every_frame_through_its_bottleneck():
    torch.manual_seed(0)
    model = LSTMAutoencoder(F, 3, hidden_sizes=(8,), latent_size=4, dense_sizes=(6,)).eval()
    b = batch()
    recon = model.reconstruct(b["x"], b["mask"])
    assert recon.shape == b["x"].shape and (recon[~b["mask"]] == 0).all()
    assert model.features(b["x"], b["mask"]).shape == (6, 4) and model(b["x"], b["mask"]).shape == (
        6,
        3,
    )
    assert [m.out_features for m in model.to_latent if isinstance(m, torch.nn.Linear)] == [6, 4]
