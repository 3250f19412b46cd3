"""Video reading: fps, frame count, stride, rotation metadata, unreadable files."""

import numpy as np
import pytest

from lbp_motion.pose.video import VideoError, VideoReader, list_videos, probe
from tests.pose.conftest import write_video

pytest.importorskip("av", reason="the pose extra (PyAV) is not installed")


def test_metadata_and_stride(tmp_path):
    path = write_video(tmp_path / "a.mp4", frames=25, size=(96, 64), fps=25)
    info = probe(path)
    assert (info.fps, info.frame_count, info.width, info.height, info.rotation) == (
        25.0,
        25,
        96,
        64,
        0,
    )
    with VideoReader(path) as reader:
        frames = list(reader.frames(stride=4))
    assert [f.index for f in frames] == [0, 4, 8, 12, 16, 20, 24]
    assert frames[1].time_s == pytest.approx(4 / 25)
    assert frames[0].image.shape == (64, 96, 3) and frames[0].image.dtype == np.uint8
    assert frames[0].image.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_is_applied_as_players_do(tmp_path, rotation):
    """PyAV frames with the display matrix applied equal OpenCV's auto-rotated frames."""
    pytest.importorskip("cv2")
    path = write_video(tmp_path / "r.mp4", frames=3, size=(96, 64), rotation=rotation)
    with VideoReader(path, "pyav") as a, VideoReader(path, "opencv") as b:
        assert a.info.rotation == b.info.rotation == {90: 270, -90: 90, 180: 180}[rotation]
        assert a.info.image_size == b.info.image_size == ((64, 96) if rotation != 180 else (96, 64))
        fa, fb = next(a.frames()).image, next(b.frames()).image
    assert fa.shape == fb.shape == (a.info.height, a.info.width, 3)
    red_a = np.argwhere((fa[..., 0] > 150) & (fa[..., 2] < 100)).mean(axis=0)
    red_b = np.argwhere((fb[..., 0] > 150) & (fb[..., 2] < 100)).mean(axis=0)
    assert np.abs(red_a - red_b).max() < 3  # the red corner block lands in the same place


def test_unreadable_videos_raise_video_error(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200)
    with pytest.raises(VideoError, match="broken.mp4: cannot read video"):
        probe(broken)
    with pytest.raises(VideoError, match="missing.mp4: file not found"):
        probe(tmp_path / "missing.mp4")
    (tmp_path / "notes.txt").write_text("x")
    assert list_videos(tmp_path) == [broken]
