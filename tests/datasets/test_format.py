import numpy as np
import pytest

from lbp_motion.datasets.format import (
    DataFormatError,
    LabelRow,
    read_labels,
    read_recording,
    write_labels,
    write_recording,
)


def _kp(t=40, j=17):
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 500, (t, j, 3)).astype(np.float32)
    kp[..., 2] = rng.uniform(0, 1, (t, j))
    return kp


def test_roundtrip_keeps_arrays_and_metadata(tmp_path):
    kp = _kp()
    write_recording(
        tmp_path / "a.npz", kp, layout="coco17", fps=25.0, image_size=(640, 480), backend="test"
    )
    rec = read_recording(tmp_path / "a.npz")
    np.testing.assert_array_equal(rec.keypoints, kp)
    assert (rec.layout, rec.fps, rec.image_size) == ("coco17", 25.0, (640, 480))
    assert rec.meta == {"backend": "test"}
    # loadable without pickle, as documented
    with np.load(tmp_path / "a.npz", allow_pickle=False) as npz:
        assert int(npz["format_version"]) == 1


def _save_raw(path, **arrays):
    base = dict(
        keypoints=_kp(),
        layout=np.asarray("coco17"),
        fps=np.asarray(30.0),
        image_size=np.asarray([640, 480]),
    )
    base.update(arrays)
    np.savez(path, **base)
    return path


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"keypoints": np.zeros((10, 17, 2), np.float32)}, "shape (10, 17, 2)"),
        ({"keypoints": np.zeros((10, 17, 3), np.float64)}, "dtype float64"),
        ({"keypoints": np.zeros((10, 12, 3), np.float32)}, "12 joints"),
        ({"keypoints": np.full((10, 17, 3), np.nan, np.float32)}, "NaN"),
        ({"keypoints": np.full((10, 17, 3), 2.0, np.float32)}, "confidences"),
        ({"layout": np.asarray("ntu99")}, "unknown joint layout 'ntu99'"),
        ({"fps": np.asarray(0.0)}, "field 'fps'"),
    ],
)
def test_bad_npz_names_file_and_field(tmp_path, arrays, message):
    path = _save_raw(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataFormatError) as err:
        read_recording(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_field_and_corrupt_file(tmp_path):
    path = tmp_path / "nofps.npz"
    np.savez(path, keypoints=_kp(), layout=np.asarray("coco17"), image_size=np.asarray([1, 1]))
    with pytest.raises(DataFormatError, match="field 'fps' is missing"):
        read_recording(path)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(
        DataFormatError, match="not a keypoint .npz file \\(it is a text file starting 'not a zip'"
    ):
        read_recording(corrupt)
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes((tmp_path / "nofps.npz").read_bytes()[:200])  # a zip cut off
    with pytest.raises(DataFormatError, match="damaged.npz: not a readable keypoint .npz file"):
        read_recording(damaged)


def test_labels_roundtrip_and_errors(tmp_path):
    rows = [LabelRow("r1", "s1", "low", "site1"), LabelRow("r2", "s2", "high", None)]
    write_labels(tmp_path, rows)
    assert read_labels(tmp_path) == rows
    (tmp_path / "labels.csv").write_text("recording,label\nr1,low\n")
    with pytest.raises(DataFormatError, match=r"columns \['subject'\] are missing"):
        read_labels(tmp_path)
    (tmp_path / "labels.csv").write_text("recording,subject,label\nr1,s1,low\nr1,s2,low\n")
    with pytest.raises(DataFormatError, match="line 3: recording 'r1' appears twice"):
        read_labels(tmp_path)
    with pytest.raises(DataFormatError, match="data folder not found"):
        read_labels(tmp_path / "nowhere")


def test_write_refuses_invalid_keypoints(tmp_path):
    bad = _kp()
    bad[3, 4, 0] = np.nan
    with pytest.raises(DataFormatError, match="frame 3, joint 4"):
        write_recording(tmp_path / "x.npz", bad, layout="coco17", fps=30, image_size=(1, 1))
    assert not list(tmp_path.iterdir())  # nothing half-written
