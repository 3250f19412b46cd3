import pytest

from lbp_motion.datasets.format import DataFormatError
from lbp_motion.datasets.splits import read_split_file, split_subjects, write_split_file
from lbp_motion.datasets.windows import window_index, window_starts


@pytest.mark.parametrize(
    ("frames", "length", "stride", "expected"),
    [
        (30, 30, 5, [0]),
        (29, 30, 5, []),
        (34, 30, 5, [0]),
        (35, 30, 5, [0, 5]),
        (100, 30, 5, list(range(0, 71, 5))),
        (10, 3, 4, [0, 4]),
    ],
)
def test_window_starts_counts_and_boundaries(frames, length, stride, expected):
    starts = window_starts(frames, length, stride)
    assert starts.tolist() == expected
    assert all(s + length <= frames for s in starts)


def test_window_index_rows_point_into_each_recording():
    idx = window_index([35, 10, 40], 30, 5)
    assert idx.tolist() == [[0, 0], [0, 5], [2, 0], [2, 5], [2, 10]]
    with pytest.raises(ValueError, match="must be positive"):
        window_starts(10, 0, 5)


def test_split_is_by_subject_stratified_and_seeded():
    labels = {f"s{i:02d}": ["low", "medium", "high"][i % 3] for i in range(30)}
    a = split_subjects(labels, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert a == split_subjects(labels, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert a != split_subjects(labels, val_fraction=0.2, test_fraction=0.2, seed=2)
    assert set(a) == set(labels)
    for split in ("train", "val", "test"):
        # every class on every side, 10 subjects per class -> 6/2/2
        per_class = {
            c: sum(1 for s, sp in a.items() if sp == split and labels[s] == c)
            for c in ("low", "medium", "high")
        }
        assert per_class == {c: {"train": 6, "val": 2, "test": 2}[split] for c in per_class}


def test_split_file_roundtrip_and_errors(tmp_path):
    assignment = {"a": "train", "b": "val", "c": "test"}
    path = write_split_file(tmp_path / "split.csv", assignment)
    assert read_split_file(path, ["a", "b", "c"]) == assignment
    with pytest.raises(DataFormatError, match=r"subjects \['d'\] of the data have no split"):
        read_split_file(path, ["a", "b", "c", "d"])
    path.write_text("subject,split\na,training\n")
    with pytest.raises(DataFormatError, match="line 2: field 'split' is 'training'"):
        read_split_file(path, ["a"])
