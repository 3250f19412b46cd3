"""Reliability table: data inputs (issue 12, items 3, 5, 6, 8).

Each row builds a broken keypoint folder (a copy of the tiny synthetic one with one
thing wrong) or video folder, runs ``lbp fit --config experiments/tug/attention_small.yaml
--data.root ...`` (refused before training) or ``lbp extract-poses``, and expects exit
status 2 and one line ``lbp: error: ...`` naming the file, field and value.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from lbp_motion.datasets.format import read_labels, read_recording, write_labels, write_recording
from lbp_motion.datasets.layouts import COCO17
from tests.conftest import TINY_ARGS
from tests.reliability.harness import Case, replay

pytestmark = pytest.mark.e2e

SOURCE: dict[str, Path] = {}  # the session's tiny synthetic folder, set by the test


def _tug(tmp: Path) -> Path:
    root = tmp / "tug"
    shutil.copytree(SOURCE["tug"], root)
    return root


def _fit(root: Path, tmp: Path) -> list[str]:
    return [
        "fit",
        "--config",
        "experiments/tug/attention_small.yaml",
        *TINY_ARGS,
        "--data.root",
        str(root),
        "--run.out_dir",
        str(tmp / "runs"),
    ]


def fit_with(change):
    """A case setup: copy the tiny folder, apply ``change(root)``, fit on it."""

    def setup(tmp: Path) -> list[str]:
        root = _tug(tmp)
        change(root)
        return _fit(root, tmp)

    return setup


def _labels_text(root: Path) -> str:
    return (root / "labels.csv").read_text()


def _encode_labels(encoding: str, bom: bytes = b""):
    def change(root: Path) -> None:
        text = _labels_text(root).replace("s001,", "Müller,", 1)
        (root / "labels.csv").write_bytes(bom + text.encode(encoding))

    return change


def _header(root: Path) -> None:
    text = _labels_text(root).splitlines()
    text[0] += ",label"
    (root / "labels.csv").write_text(
        "\n".join(line + ",x" if i else line for i, line in enumerate(text)) + "\n"
    )


def _recording(name: str):
    def change(root: Path) -> None:
        rows = read_labels(root)
        outside = root.parent / "other"
        outside.mkdir(exist_ok=True)
        shutil.copy(
            root / f"{rows[0].recording}.npz", outside / "x.npz"
        )  # a readable file out there
        (root / f"{rows[0].recording}.npz").unlink()
        rows[0].recording = name
        write_labels(root, rows)

    return change


def _first(root: Path) -> Path:
    return root / f"{read_labels(root)[0].recording}.npz"


def _text_as_npz(root: Path) -> None:
    _first(root).write_text("recording,subject,label\ns001_r1,s001,low\n")


def _field(**changes):
    def change(root: Path) -> None:
        path = _first(root)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays.update(changes)
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    return change


def _keypoints(edit):
    def change(root: Path) -> None:
        path = _first(root)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["keypoints"] = edit(arrays["keypoints"].copy())
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    return change


def _far(kp):
    kp[5, 11, 0] = 1e30
    return kp


def _collapsed_torso(kp):
    kp[..., 2] = 1.0
    hips = [COCO17.index("left_hip"), COCO17.index("right_hip")]
    shoulders = [COCO17.index("left_shoulder"), COCO17.index("right_shoulder")]
    kp[:, shoulders, :2] = kp[:, hips, :2]
    kp[:, shoulders, 1] += 0.001
    return kp


def _one_class(root: Path) -> None:
    rows = read_labels(root)
    for r in rows:
        r.label = "high"
    write_labels(root, rows)


def _all_blank(root: Path) -> None:
    for path in root.glob("*.npz"):
        rec = read_recording(path)
        write_recording(
            path,
            np.zeros_like(rec.keypoints),
            layout="coco17",
            fps=rec.fps,
            image_size=rec.image_size,
        )


# -- lbp extract-poses ---------------------------------------------------------------------
def _videos(tmp: Path, labels: bytes) -> Path:
    videos = tmp / "videos"
    videos.mkdir()
    (videos / "c1.mp4").write_bytes(b"\x00" * 64)  # never decoded: the labels are refused first
    (videos / "labels.csv").write_bytes(labels)
    return videos


def _extract(tmp: Path, videos: Path) -> list[str]:
    return [
        "extract-poses",
        str(videos),
        "--out_dir",
        str(tmp / "kp"),
        "--backend",
        "fake",
        "--no_progress",
    ]


def extract_conflict(tmp: Path) -> list[str]:
    out = tmp / "kp"
    out.mkdir()
    (out / "labels.csv").write_text("recording,subject,label\na1,s1,low\nc1,s9,medium\n")
    return _extract(tmp, _videos(tmp, b"recording,subject,label\nc1,s9,high\n"))


def nothing_written(tmp: Path) -> None:
    out = tmp / "kp"
    assert sorted(p.name for p in out.iterdir()) == ["labels.csv"]
    assert [(r.recording, r.label) for r in read_labels(out)] == [("a1", "low"), ("c1", "medium")]


def extract_latin1_out_labels(tmp: Path) -> list[str]:
    out = tmp / "kp"
    out.mkdir()
    (out / "labels.csv").write_bytes("recording,subject,label\na1,Müller,low\n".encode("latin-1"))
    return _extract(tmp, _videos(tmp, b"recording,subject,label\nc1,s9,high\n"))


def extract_path_in_labels(tmp: Path) -> list[str]:
    return _extract(tmp, _videos(tmp, b"recording,subject,label\n../c1,s9,high\n"))


CASES = [
    Case(
        "labels-latin1",
        fit_with(_encode_labels("latin-1")),
        r"^lbp: error: \S+/labels.csv, line 2: not UTF-8 text \(byte b'\\xfc' at offset \d+; perhaps Latin-1",
    ),
    Case(
        "labels-utf16",
        fit_with(_encode_labels("utf-16")),
        r"^lbp: error: \S+/labels.csv, line 1: not UTF-8 text .*it looks like UTF-16\); save it as UTF-8$",
    ),
    Case(
        "labels-duplicate-column",
        fit_with(_header),
        r"^lbp: error: \S+/labels.csv: column 'label' appears more than once in the header",
    ),
    Case(
        "labels-recording-parent-path",
        fit_with(_recording("../../other/x")),
        r"^lbp: error: \S+/labels.csv, line 2: field 'recording' is '../../other/x'; it is a path; "
        r"expected a file name inside the data folder",
    ),
    Case(
        "labels-recording-absolute-path",
        fit_with(_recording("/tmp/other/x")),
        r"^lbp: error: \S+/labels.csv, line 2: field 'recording' is '/tmp/other/x'; it is a path",
    ),
    Case(
        "npz-is-text",
        fit_with(_text_as_npz),
        r"^lbp: error: \S+/s001_r1.npz: not a keypoint .npz file \(it is a text file starting 'recording,su'; "
        r"expected a zip archive written by numpy.savez\)$",
    ),
    Case(
        "npz-fps-text",
        fit_with(_field(fps=np.asarray("thirty"))),
        r"^lbp: error: \S+/s001_r1.npz: field 'fps' is 'thirty'; expected a positive number",
    ),
    Case(
        "npz-format-version-text",
        fit_with(_field(format_version=np.asarray("one"))),
        r"^lbp: error: \S+/s001_r1.npz: field 'format_version' is 'one'; expected the integer 1$",
    ),
    Case(
        "npz-object-array",
        fit_with(_field(backend=np.asarray([None, 1], dtype=object))),
        r"^lbp: error: \S+/s001_r1.npz: field 'backend' holds Python objects",
    ),
    Case(
        "keypoints-1e30",
        fit_with(_keypoints(_far)),
        r"^lbp: error: \S+/s001_r1.npz: field 'keypoints' has 1 coordinates above 1e\+06 pixels in absolute value "
        r"\(first at frame 5, joint 11: x = 1e\+30\)",
    ),
    Case(
        "keypoints-collapsed-torso",
        fit_with(_keypoints(_collapsed_torso)),
        r"^lbp: error: \S+/s001_r1.npz: body scale \(median torso length\) is 0.001\d* pixels but frame \d+'s "
        r"visible joints spread over",
    ),
    Case(
        "one-class",
        fit_with(_one_class),
        r"^lbp: error: data: the training split has samples of one class only \('high'\); training needs at least two",
    ),
    Case(
        "all-keypoints-zero",
        fit_with(_all_blank),
        r"^lbp: error: \S+/tug: no usable recording: 9 have no visible joint \(confidence >= 0.3\) and 0 are shorter",
    ),
    Case(
        "extract-conflicting-labels",
        extract_conflict,
        r"^lbp: error: \S+/kp/labels.csv: recording 'c1' is listed with subject 's9', label 'medium', but "
        r"\S+/videos/labels.csv says subject 's9', label 'high'; nothing was written",
        check=nothing_written,
    ),
    Case(
        "extract-out-labels-latin1",
        extract_latin1_out_labels,
        r"^lbp: error: \S+/kp/labels.csv, line 2: not UTF-8 text",
    ),
    Case(
        "extract-labels-path",
        extract_path_in_labels,
        r"^lbp: error: \S+/videos/labels.csv, line 2: field 'recording' is '../c1'; it is a path",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_data_input(case, tiny_tug, tmp_path, capsys):
    SOURCE["tug"] = tiny_tug
    replay(case, tmp_path, capsys)
    runs = tmp_path / "runs"
    assert not runs.exists() or not list(
        runs.glob("*/version_*")
    )  # a refused fit leaves no run folder
