"""Prediction on one keypoint file with a trained checkpoint (the video case:
tests/pose/test_real_video.py): JSON, aggregation, timeline, overlay, the CLI forms."""

import json

import numpy as np
import pytest
import torch

import lbp_motion
from lbp_motion.cli import main
from lbp_motion.datasets.format import read_recording, write_recording
from lbp_motion.datasets.layouts import layout_conversion
from lbp_motion.datasets.synthetic import generate_tug_dataset
from lbp_motion.inference.predict import AGGREGATION, predict

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    root = generate_tug_dataset(
        tmp_path_factory.mktemp("one"), num_subjects=1, recordings_per_subject=1, seed=5
    )
    return root / "s001_r1.npz"


def test_predict_a_keypoint_file(tiny_checkpoint, recording, tmp_path):
    result = predict(tiny_checkpoint, recording, out_dir=tmp_path / "out")
    rec = read_recording(recording)
    windows = result["windows"]
    assert result["classes"] == ["low", "medium", "high"] and result["frames"] == rec.num_frames
    assert [w["start"] for w in windows] == list(
        range(0, rec.num_frames - 30 + 1, 15)
    )  # the checkpoint's windowing
    probs = np.array([[w["probabilities"][c] for c in result["classes"]] for w in windows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    mean = probs.mean(axis=0)  # recording = mean of its windows
    np.testing.assert_allclose(
        [result["probabilities"][c] for c in result["classes"]], mean, atol=1e-5
    )
    assert (
        result["predicted"] == result["classes"][int(mean.argmax())]
        and result["aggregation"] == AGGREGATION
    )
    assert result["tug"]["time_s"] is not None and 4 < result["tug"]["time_s"] < 20
    saved = json.loads((tmp_path / "out" / "prediction.json").read_text())
    assert saved["probabilities"] == result["probabilities"]
    assert (tmp_path / "out" / "timeline.png").stat().st_size > 5000
    np.testing.assert_array_equal(
        read_recording(tmp_path / "out" / "keypoints.npz").keypoints, rec.keypoints
    )


def test_windows_match_the_datamodule_pipeline(tiny_checkpoint, recording):
    """The same normalisation and model as `lbp predict --config` over a dataset."""
    from lbp_motion.datamodules.tug import PoseWindowDataset
    from lbp_motion.datasets.layouts import COCO17
    from lbp_motion.datasets.normalize import body_scale
    from lbp_motion.tasks import load_task

    rec = read_recording(recording)
    task = load_task(tiny_checkpoint).eval()
    ds = PoseWindowDataset([rec.keypoints], np.array([body_scale(rec.keypoints, COCO17, 0.3)], np.float32),
                           np.zeros(1, np.int64), np.zeros(1, np.int64), np.array([[0, 15]]),
                           layout="coco17", window=30, min_confidence=0.3)  # fmt: skip
    item = ds[0]
    with torch.no_grad():
        expected = task(item["x"][None], item["mask"][None]).softmax(-1)[0].numpy()
    got = predict(tiny_checkpoint, recording)["windows"][1]["probabilities"]
    np.testing.assert_allclose(list(got.values()), expected, atol=1e-5)


def test_other_layouts_and_frame_rates_are_converted(tiny_checkpoint, recording, tmp_path):
    rec = read_recording(recording)
    op = np.zeros((rec.num_frames, 18, 3), np.float32)
    op[:, layout_conversion("openpose18", "coco17")] = (
        rec.keypoints
    )  # the same joints in OpenPose's order
    half = op[::2]  # 15 fps
    write_recording(
        tmp_path / "op.npz", half, layout="openpose18", fps=15.0, image_size=rec.image_size
    )
    result = lbp_motion.predict(tiny_checkpoint, tmp_path / "op.npz")
    assert result["resampled_from_fps"] == 15.0 and result["fps"] == 30.0
    assert abs(result["frames"] - rec.num_frames) <= 1


def test_lbp_predict_file_and_lbp_predict_over_a_datamodule(
    tiny_checkpoint, recording, tmp_path, capsys
):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "predict-file",
                str(recording),
                "--ckpt_path",
                str(tiny_checkpoint),
                "--out_dir",
                str(out),
                "--overlay",
            ]
        )
        == 0
    )
    printed, err = capsys.readouterr()
    assert "deprecated" not in err
    assert (
        "s001_r1: " in printed and "TUG time" in printed and f"Results: {out.resolve()}" in printed
    )
    assert {p.name for p in out.iterdir()} >= {
        "prediction.json",
        "timeline.png",
        "keypoints.npz",
        "overlay.mp4",
    }
    import av

    with av.open(str(out / "overlay.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == read_recording(recording).num_frames

    assert (
        main(["predict-file", str(tmp_path / "missing.mp4"), "--ckpt_path", str(tiny_checkpoint)])
        == 2
    )
    assert "missing.mp4: file not found" in capsys.readouterr().err
    assert main(["predict-file", str(recording), "--ckpt_path", str(tmp_path / "no.ckpt")]) == 2
    # `lbp predict` is LightningCLI's prediction over a DataModule
    assert main(["predict", "--ckpt_path", str(tiny_checkpoint), "--data.predict_split", "all",
                 "--trainer.enable_progress_bar", "false", "--run.wandb", "disabled",
                 "--run.out_dir", str(tmp_path / "runs")]) == 0  # fmt: skip
    assert next((tmp_path / "runs").glob("*/version_*/recording_predictions.csv")).is_file()


def test_the_0x_form_lbp_predict_path_ckpt_out_still_works_and_says_what_replaces_it(
    tiny_checkpoint, recording, tmp_path, capsys
):
    out = tmp_path / "old"
    with pytest.warns(DeprecationWarning):
        assert (
            main(
                [
                    "predict",
                    str(recording),
                    "--ckpt",
                    str(tiny_checkpoint),
                    "--out",
                    str(out),
                    "--no-timeline",
                ]
            )
            == 0
        )
    printed, err = capsys.readouterr()
    assert f"Results: {out.resolve()}" in printed and (out / "prediction.json").is_file()
    assert not (out / "timeline.png").exists()  # --no-timeline reached predict-file too
    warnings = [line for line in err.splitlines() if line.startswith("lbp: warning:")]
    assert warnings == [
        "lbp: warning: `lbp predict PATH` is deprecated; use `lbp predict-file PATH` (the old form goes in the next release)",
        "lbp: warning: --ckpt is deprecated; use --ckpt_path (the old spelling goes in the next release)",
        "lbp: warning: --out is deprecated; use --out_dir (the old spelling goes in the next release)",
        "lbp: warning: --no-timeline is deprecated; use --no_timeline (the old spelling goes in the next release)",
    ]


def test_a_recording_shorter_than_a_window_is_a_clear_error(tiny_checkpoint, tmp_path):
    write_recording(
        tmp_path / "short.npz",
        np.ones((10, 17, 3), np.float32),
        layout="coco17",
        fps=30,
        image_size=(100, 100),
    )
    with pytest.raises(
        lbp_motion.errors.LbpError, match="short: 10 frames .* at least one window of 30"
    ):
        predict(tiny_checkpoint, tmp_path / "short.npz")


def test_a_recording_level_checkpoint_is_refused_for_one_file_with_a_pointer(
    tiny_checkpoint, recording, tmp_path
):
    import torch

    from lbp_motion.errors import LbpError
    from lbp_motion.trust import load_checkpoint

    ckpt = load_checkpoint(tiny_checkpoint)
    ckpt["lbp_motion"]["data"]["unit"] = "recording"
    torch.save(ckpt, tmp_path / "recording.ckpt")
    with pytest.raises(
        LbpError,
        match=r"recording-level model .* use `lbp predict --ckpt_path CKPT --data.root FOLDER` on a keypoint folder",
    ):
        predict(tmp_path / "recording.ckpt", recording)
