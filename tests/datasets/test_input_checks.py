"""Reading labels.csv and keypoint files that break the format in ways seen in the
wild (issue 12): encodings, header typos, paths, non-npz files, text in number fields,
absurd coordinates; and merging labels without ever losing a row."""

import os

import numpy as np
import pytest

from lbp_motion.datasets.format import (
    DataFormatError,
    LabelRow,
    check_labels_merge,
    merge_labels,
    read_labels,
    read_recording,
    write_labels,
)

HEADER = "recording,subject,label\n"


def _labels(folder, data: bytes):
    folder.mkdir(exist_ok=True)
    (folder / "labels.csv").write_bytes(data)
    return folder


def test_a_utf8_byte_order_mark_is_read(tmp_path):
    root = _labels(tmp_path, "\ufeffrecording,subject,label\nr1,s1,low\n".encode())
    assert read_labels(root) == [LabelRow("r1", "s1", "low")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            (HEADER + "r1,Müller,low\n").encode("latin-1"),
            r"labels.csv, line 2: not UTF-8 text \(byte b'\\xfc' .*Latin-1",
        ),
        (
            (HEADER + "r1,s1,low\n").encode("utf-16"),
            r"labels.csv, line 1: not UTF-8 text .*it looks like UTF-16",
        ),
        (
            b"recording,subject,label,label\nr1,s1,low,high\n",
            r"labels.csv: column 'label' appears more than once",
        ),
        (b"recording, subject ,label\nr1,s1,low\n", None),  # header whitespace is stripped
        (
            HEADER.encode() + b"r1,s1,low\n,,\n",
            None,
        ),  # a row of empty cells (spreadsheets) is skipped
        (HEADER.encode() + b"r1,s1,lo\x00w\n", r"labels.csv: holds NUL bytes"),
        (
            HEADER.encode() + b"../../other/x,s1,low\n",
            r"line 2: field 'recording' is '../../other/x'; it is a path",
        ),
        (
            HEADER.encode() + b"/etc/passwd,s1,low\n",
            r"line 2: field 'recording' is '/etc/passwd'; it is a path",
        ),
        (HEADER.encode() + b"sub\\x,s1,low\n", r"field 'recording' is 'sub\\\\x'; it is a path"),
        (HEADER.encode() + b"..,s1,low\n", r"field 'recording' is '..'; it is not a file name"),
    ],
)
def test_labels_errors_are_one_line_naming_file_line_and_field(tmp_path, data, message):
    root = _labels(tmp_path / "d", data)
    if message is None:
        assert read_labels(root) == [LabelRow("r1", "s1", "low")]
        return
    with pytest.raises(DataFormatError, match=message) as err:
        read_labels(root)
    assert "\n" not in str(err.value) and str(root / "labels.csv") in str(err.value)


def test_other_columns_survive_a_rewrite(tmp_path):
    root = _labels(tmp_path, b"recording,subject,label,notes,site\nr1,s1,low,limps,A\n")
    rows = read_labels(root)
    assert rows[0].extra == {"notes": "limps"} and rows[0].site == "A"
    write_labels(root, rows)
    assert (root / "labels.csv").read_text().splitlines() == [
        "recording,subject,label,site,notes",
        "r1,s1,low,A,limps",
    ]


def test_merge_keeps_every_row_adds_new_ones_and_keeps_identical_ones(tmp_path):
    root = _labels(
        tmp_path, b"recording,subject,label,notes\nold1,s1,low,x\nold2,s2,high,\nsame,s3,low,y\n"
    )
    os.chmod(root / "labels.csv", 0o644)
    added = merge_labels(
        root,
        [LabelRow("same", "s3", "low"), LabelRow("new", "s4", "medium")],
        source="v/labels.csv",
    )
    assert [r.recording for r in added] == ["new"]
    rows = read_labels(root)
    assert [(r.recording, r.subject, r.label, r.extra.get("notes")) for r in rows] == [
        ("old1", "s1", "low", "x"), ("old2", "s2", "high", ""), ("same", "s3", "low", "y"), ("new", "s4", "medium", ""),
    ]  # fmt: skip
    assert (
        root / "labels.csv"
    ).stat().st_mode & 0o777 == 0o644  # the atomic rewrite kept the permissions
    assert sorted(p.name for p in root.iterdir()) == ["labels.csv"]  # no temporary file left
    before = (root / "labels.csv").read_bytes()
    assert (
        merge_labels(root, [LabelRow("old1", "s1", "low")]) == []
    )  # nothing new: the file is not rewritten
    assert (root / "labels.csv").read_bytes() == before


def test_merge_refuses_a_conflicting_row_and_writes_nothing(tmp_path):
    root = _labels(tmp_path, b"recording,subject,label\nr1,s1,low\nr2,s2,low\n")
    before = (root / "labels.csv").read_bytes()
    new = [
        LabelRow("r3", "s3", "low"),
        LabelRow("r2", "s2", "high"),
        LabelRow("r1", "s1", "low", "A"),
    ]
    with pytest.raises(DataFormatError) as err:
        merge_labels(root, new, source="videos/labels.csv")
    assert str(err.value) == (
        f"{root / 'labels.csv'}: recording 'r2' is listed with subject 's2', label 'low', but videos/labels.csv says "
        "subject 's2', label 'high' (2 such recordings); nothing was written: correct one of the two files"
    )
    assert (root / "labels.csv").read_bytes() == before
    assert (
        check_labels_merge(tmp_path / "nowhere", new) == []
    )  # no labels.csv yet: nothing to conflict with


def test_merge_into_a_folder_without_labels_creates_it(tmp_path):
    assert merge_labels(tmp_path / "out", [LabelRow("a", "s", "low")]) == [
        LabelRow("a", "s", "low")
    ]
    assert read_labels(tmp_path / "out") == [LabelRow("a", "s", "low")]


def _npz(path, **changes):
    kp = np.zeros((40, 17, 3), np.float32)
    kp[..., :2] = 100
    kp[..., 2] = 1
    arrays = dict(
        keypoints=kp,
        layout=np.asarray("coco17"),
        fps=np.asarray(30.0),
        image_size=np.asarray([640, 480]),
    )
    arrays.update(changes)
    np.savez(path, **arrays)
    return path


def test_a_text_file_saved_as_npz_is_named_without_a_pickle_hint(tmp_path):
    path = tmp_path / "p1.npz"
    path.write_text("recording,subject,label\n")
    with pytest.raises(DataFormatError) as err:
        read_recording(path)
    assert str(err.value).startswith(
        f"{path}: not a keypoint .npz file (it is a text file starting 'recording,su'"
    )
    assert "pickle" not in str(err.value)
    np.save(tmp_path / "arr.npy", np.zeros(3))
    os.replace(tmp_path / "arr.npy", path)
    with pytest.raises(
        DataFormatError, match=r"not a keypoint .npz file \(it is a single .npy array"
    ):
        read_recording(path)
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"not a keypoint .npz file \(the file is empty\)"):
        read_recording(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fps": np.asarray("thirty")}, "field 'fps' is 'thirty'; expected a positive number"),
        (
            {"fps": np.asarray([30.0, 30.0])},
            r"field 'fps' is \[30.0, 30.0\]; expected a positive number",
        ),
        ({"fps": np.asarray(np.inf)}, "field 'fps' is inf; expected a positive number"),
        (
            {"format_version": np.asarray("one")},
            "field 'format_version' is 'one'; expected the integer 1",
        ),
        ({"format_version": np.asarray(0)}, "field 'format_version' is 0; expected 1"),
        ({"image_size": np.asarray(["wide", "tall"])}, r"field 'image_size' is \('wide', 'tall'\)"),
        ({"layout": np.asarray(17)}, "field 'layout' is 17; expected a layout name"),
        ({"backend": np.asarray([{"a": 1}], dtype=object)}, "field 'backend' holds Python objects"),
    ],
)
def test_fields_with_the_wrong_kind_of_value(tmp_path, changes, message):
    path = _npz(tmp_path / "p1.npz", **changes)
    with pytest.raises(DataFormatError, match=message) as err:
        read_recording(path)
    assert str(err.value).startswith(f"{path}: ")


def test_absurd_coordinates_are_named_with_frame_and_joint(tmp_path):
    kp = np.zeros((40, 17, 3), np.float32)
    kp[..., 2] = 1
    kp[7, 3, 1] = 1e30
    path = _npz(tmp_path / "p1.npz", keypoints=kp)
    with pytest.raises(DataFormatError) as err:
        read_recording(path)
    assert str(err.value) == (
        f"{path}: field 'keypoints' has 1 coordinates above 1e+06 pixels in absolute value "
        "(first at frame 7, joint 3: y = 1e+30); expected pixel coordinates"
    )
