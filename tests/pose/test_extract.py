"""The extraction runner and `lbp extract-poses`, with a fake pose backend on small
generated videos (the real MediaPipe backend on a real video: test_real_video.py)."""

import os

import pytest

from lbp_motion.cli import main
from lbp_motion.datamodules.tug import TUGDataModule
from lbp_motion.datasets.format import read_labels, read_recording
from lbp_motion.datasets.layouts import COCO17
from lbp_motion.pose.extract import extract_folder, extract_video, keypoints_for_video_folder
from lbp_motion.pose.tracking import TRACKING_RULE
from tests.pose.conftest import FakeBackend, write_video

pytest.importorskip("av", reason="the pose extra (PyAV) is not installed")


def test_extract_video_tracks_the_walker_and_keeps_missed_frames(tmp_path):
    video = write_video(tmp_path / "walk.mp4", frames=40, size=(200, 100))
    backend = FakeBackend(miss_ms=[round(1000 * 10 / 30)])  # nobody found in frame 10
    result = extract_video(video, backend, stride=2, progress=False)
    assert backend.calls == [4, 4, 4, 4, 4]  # 20 frames, in batches of the backend's size
    assert (
        result.keypoints.shape == (20, 17, 3)
        and result.fps == 15.0
        and result.image_size == (200, 100)
    )
    assert (result.keypoints[5] == 0).all() and result.detected == 19  # frame 10 = row 5
    hip_x = result.keypoints[:, COCO17.index("left_hip"), 0]
    assert hip_x[0] < 60 and hip_x[-1] > 140  # the walker (20 % -> 80 %), not the bystander at 10 %
    meta = result.meta
    assert (meta["backend"], meta["model"], meta["backend_version"]) == (
        "fake",
        "stick-figures",
        "1",
    )
    assert (
        meta["source_video"] == "walk.mp4"
        and meta["frame_stride"] == 2
        and meta["tracking"] == TRACKING_RULE
    )


@pytest.mark.e2e
def test_extract_poses_command_is_resumable_and_reports_corrupt_files(
    tmp_path, fake_backend, capsys
):
    videos, out = tmp_path / "videos", tmp_path / "keypoints"
    videos.mkdir()
    for name in ("p1", "p2"):
        write_video(videos / f"{name}.mp4", frames=40)
    (videos / "p3.mp4").write_bytes(b"not a video at all" * 100)
    (videos / "labels.csv").write_text(
        "recording,subject,label\np1,s1,low\np2,s2,high\np3,s3,low\n"
    )
    args = [
        "extract-poses",
        str(videos),
        "--out_dir",
        str(out),
        "--backend",
        "fake",
        "--no_progress",
    ]

    assert main(args) == 1  # p3 failed
    printed = capsys.readouterr()
    assert (
        "3 videos: 2 written, 0 already done, 1 failed; 80 frames, detection rate 100.0%"
        in printed.out
    )
    assert "failed: p3.mp4" in printed.out and "p3.mp4" in printed.err
    assert sorted(p.name for p in out.iterdir()) == [
        "labels.csv",
        "p1.npz",
        "p2.npz",
    ]  # no temporary files left
    assert [r.recording for r in read_labels(out)] == ["p1", "p2"]
    rec = read_recording(out / "p1.npz")
    assert rec.layout == "coco17" and rec.num_frames == 40 and rec.meta["backend"] == "fake"

    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}
    assert main(args) == 1  # the corrupt file still fails ...
    assert "0 written, 2 already done, 1 failed; 0 frames" in capsys.readouterr().out
    assert {
        p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")
    } == stamps  # ... the others are not redone
    assert len(fake_backend) == 1  # and no backend was even created the second time

    (videos / "p3.mp4").unlink()
    assert main(args) == 0


def test_a_changed_or_half_written_file_is_redone(tmp_path, fake_backend):
    videos, out = tmp_path / "videos", tmp_path / "kp"
    videos.mkdir()
    write_video(videos / "a.mp4", frames=40)
    write_video(videos / "b.mp4", frames=40)
    summary = extract_folder(videos, out, backend="fake", progress=False)
    assert summary.extracted == ["a", "b"]
    (out / "a.npz").write_bytes(b"half a file")  # e.g. copied in by hand and cut off
    write_video(videos / "b.mp4", frames=36)  # the video was replaced
    summary = extract_folder(videos, out, backend="fake", progress=False)
    assert sorted(summary.extracted) == ["a", "b"] and summary.done == []
    assert read_recording(out / "b.npz").num_frames == 36


@pytest.mark.e2e
def test_labels_limit_the_videos_and_unknown_backends_are_one_line_errors(
    tmp_path, fake_backend, capsys
):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "a.mp4", frames=40)
    write_video(videos / "extra.mp4", frames=40)
    labels = tmp_path / "my_labels.csv"
    labels.write_text("recording,subject,label\na,s1,low\n")
    summary = extract_folder(videos, tmp_path / "kp", backend="fake", labels=labels, progress=False)
    assert summary.extracted == ["a"] and summary.skipped[0][0] == "extra.mp4"
    assert [r.recording for r in read_labels(tmp_path / "kp")] == ["a"]

    assert (
        main(["extract-poses", str(videos), "--out_dir", str(tmp_path / "x"), "--backend", "nope"])
        == 2
    )
    assert "lbp: error: unknown pose backend 'nope'" in capsys.readouterr().err
    assert main(["extract-poses", str(tmp_path / "missing"), "--out_dir", str(tmp_path / "x")]) == 2


def test_tug_datamodule_accepts_a_video_folder(tmp_path, fake_backend, monkeypatch):
    """A folder of videos + labels.csv is extracted once into $LBP_CACHE/poses."""
    from lbp_motion.pose import base

    monkeypatch.setitem(
        base._REGISTERED, "mediapipe", base._REGISTERED["fake"]
    )  # the default backend
    monkeypatch.setenv("LBP_CACHE", str(tmp_path / "cache"))
    videos = tmp_path / "videos"
    videos.mkdir()
    rows = ["recording,subject,label"]
    for i in range(6):
        write_video(videos / f"v{i}.mp4", frames=36)
        rows.append(f"v{i},s{i},{['low', 'high'][i % 2]}")
    (videos / "labels.csv").write_text("\n".join(rows) + "\n")

    dm = TUGDataModule(
        root=str(videos),
        classes=["low", "high"],
        window=30,
        stride=5,
        val_fraction=0.2,
        test_fraction=0.2,
    )
    dm.setup("fit")
    folder = keypoints_for_video_folder(videos)
    assert folder.parent == tmp_path / "cache" / "poses" and len(list(folder.glob("*.npz"))) == 6
    assert sorted(dm.recording_names) == [f"v{i}" for i in range(6)]
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape[1:] == (30, 51)
    assert len(fake_backend) == 1  # the second resolution found everything done
    # the cached folder mirrors the video folder's labels.csv: an edited label is taken over
    (videos / "labels.csv").write_text("\n".join(rows).replace("v0,s0,low", "v0,s0,high") + "\n")
    assert {r.recording: r.label for r in read_labels(keypoints_for_video_folder(videos))}[
        "v0"
    ] == "high"
    assert keypoints_for_video_folder(tmp_path) == tmp_path  # not a video folder: unchanged
    (videos / "labels.csv").unlink()
    from lbp_motion.datasets.format import DataFormatError

    with pytest.raises(DataFormatError, match="needs a labels.csv"):
        keypoints_for_video_folder(videos)
    assert os.environ["LBP_OFFLINE"] == "1"


@pytest.mark.e2e
def test_a_second_folder_merges_into_the_labels_and_a_conflict_is_refused_first(
    tmp_path, fake_backend, capsys
):
    """Issue 12: extracting into an existing keypoint folder used to replace its labels.csv
    with only the new folder's rows."""
    out = tmp_path / "kp"
    for folder, names in (("clinic_a", ["a1", "a2"]), ("clinic_b", ["b1"])):
        (tmp_path / folder).mkdir()
        for name in names:
            write_video(tmp_path / folder / f"{name}.mp4", frames=36)
        rows = "".join(f"{n},s_{n},low\n" for n in names) + (
            "a2,s_a2,low\n" if folder == "clinic_b" else ""
        )
        (tmp_path / folder / "labels.csv").write_text("recording,subject,label\n" + rows)
        assert (
            main(
                [
                    "extract-poses",
                    str(tmp_path / folder),
                    "--out_dir",
                    str(out),
                    "--backend",
                    "fake",
                    "--no_progress",
                ]
            )
            == 0
        )
    # clinic_b lists a2 again, identically: kept once; a1 and a2 are not lost
    assert [r.recording for r in read_labels(out)] == ["a1", "a2", "b1"]

    (tmp_path / "clinic_c").mkdir()
    write_video(tmp_path / "clinic_c" / "c1.mp4", frames=36)
    (tmp_path / "clinic_c" / "labels.csv").write_text(
        "recording,subject,label\nc1,s_c1,low\na1,s_a1,high\n"
    )
    before = (out / "labels.csv").read_bytes()
    capsys.readouterr()
    assert (
        main(
            [
                "extract-poses",
                str(tmp_path / "clinic_c"),
                "--out_dir",
                str(out),
                "--backend",
                "fake",
                "--no_progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err == (
        f"lbp: error: {out / 'labels.csv'}: recording 'a1' is listed with subject 's_a1', label 'low', but "
        f"{tmp_path / 'clinic_c' / 'labels.csv'} says subject 's_a1', label 'high'; nothing was written: "
        "correct one of the two files"
    )
    assert (out / "labels.csv").read_bytes() == before and not (
        out / "c1.npz"
    ).exists()  # refused before extracting
