"""lbp_motion.atomic: the one way lbp replaces a file."""

import json
import os
import threading

import pytest
import torch

from lbp_motion.atomic import atomic_write, write_bytes, write_json, write_text


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_failing_writer_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old\n")

    def half_then_fail(tmp):
        tmp.write_text("half of the new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old\n"
    assert _leftovers(tmp_path) == []


def test_an_interrupt_also_cleans_up(tmp_path):
    path = tmp_path / "last.ckpt"

    def interrupted(tmp):
        tmp.write_bytes(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, interrupted)
    assert list(tmp_path.iterdir()) == []


def test_json_that_cannot_be_serialised_replaces_nothing(tmp_path):
    path = write_json(tmp_path / "a.json", {"x": 1})
    with pytest.raises(TypeError):
        write_json(path, {"x": object()})
    assert json.loads(path.read_text()) == {"x": 1}
    assert _leftovers(tmp_path) == []


def test_json_round_trip_and_layout(tmp_path):
    data = {"b": [1, 2.5, None], "a": {"nested": "ü"}, "nan": float("nan")}
    path = write_json(tmp_path / "sub" / "metrics.json", data)  # the folder is made
    text = path.read_text()
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
    back = json.loads(text)
    assert back["a"] == data["a"] and back["b"] == data["b"] and back["nan"] != back["nan"]


def test_text_bytes_and_a_callback_for_torch_save(tmp_path):
    assert write_text(tmp_path / "t.md", "a\r\nb\n").read_bytes() == b"a\r\nb\n"
    assert write_bytes(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    state = {"w": torch.arange(3)}
    path = atomic_write(tmp_path / "m.ckpt", lambda tmp: torch.save(state, tmp))
    assert torch.equal(torch.load(path, weights_only=True)["w"], state["w"])
    assert _leftovers(tmp_path) == []


def test_the_temporary_file_is_beside_the_target_with_the_suffix_asked_for(tmp_path):
    seen = []
    atomic_write(
        tmp_path / "overlay.mp4",
        lambda tmp: (seen.append(tmp), tmp.write_bytes(b"v")),
        suffix=".tmp.mp4",
    )
    (tmp,) = seen
    assert (
        tmp.parent == tmp_path
        and tmp.name.startswith(".overlay.mp4.")
        and tmp.name.endswith(".tmp.mp4")
    )
    assert not tmp.exists() and (tmp_path / "overlay.mp4").read_bytes() == b"v"


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("old")
    os.chmod(path, 0o640)
    write_text(path, "new")
    assert path.stat().st_mode & 0o777 == 0o640 and path.read_text() == "new"


def test_a_new_file_gets_the_permissions_open_would_give_it(tmp_path):
    write_text(tmp_path / "metrics.json", "{}")
    (tmp_path / "plain.json").write_text("{}")
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == (
        tmp_path / "plain.json"
    ).stat().st_mode & 0o777


def test_concurrent_writers_get_their_own_temporary_files(tmp_path):
    path = tmp_path / "state.json"
    names, barrier = [], threading.Barrier(8)

    def write(i):
        def fill(tmp):
            names.append(tmp.name)
            barrier.wait(timeout=10)  # every writer holds its temporary file at once
            tmp.write_text(json.dumps({"writer": i}))

        atomic_write(path, fill)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 8
    assert json.loads(path.read_text())["writer"] in range(8)  # one whole file won
    assert _leftovers(tmp_path) == []
