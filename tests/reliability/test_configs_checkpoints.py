"""The reliability table for configs, checkpoints and training that goes wrong: each
row is a hostile or broken input and the one line ``lbp`` must answer it with."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_ARGS, TINY_TUG
from tests.reliability.harness import Case, replay

ATTENTION_SMALL = "experiments/tug/attention_small.yaml"
MARKER = "imported-untrusted-code"


@functools.cache
def _tiny_data() -> Path:
    from lbp_motion.datasets.synthetic import generate_tug_dataset

    return generate_tug_dataset(Path(tempfile.mkdtemp(prefix="lbp-rel-")), **TINY_TUG["data"])


@functools.cache
def _checkpoint() -> Path:
    """last.ckpt of one tiny fit (shared by the rows that edit a real checkpoint)."""
    from lbp_motion.cli import main

    out = Path(tempfile.mkdtemp(prefix="lbp-rel-runs-"))
    assert (
        main(
            [
                "fit",
                "--config",
                ATTENTION_SMALL,
                "--data.root",
                str(_tiny_data()),
                *TINY_ARGS,
                "--trainer.max_epochs",
                "1",
                "--test_after_fit",
                "false",
                "--run.out_dir",
                str(out),
            ]
        )
        == 0
    )
    return next(out.glob("attention_small/version_0/checkpoints/last.ckpt"))


def _fit(*extra: str):
    def setup(tmp: Path) -> list[str]:
        return [
            "fit",
            "--config",
            ATTENTION_SMALL,
            "--data.root",
            str(_tiny_data()),
            *TINY_ARGS,
            *extra,
            "--run.out_dir",
            str(tmp / "runs"),
        ]

    return setup


class _RunsShell:
    """Pickles to a call of os.system: what a crafted checkpoint smuggles in."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _crafted(tmp: Path) -> list[str]:
    ckpt = torch.load(_checkpoint(), weights_only=True)
    ckpt["lbp_motion"]["payload"] = _RunsShell(f"touch {tmp / MARKER}")
    torch.save(ckpt, tmp / "last.ckpt")
    return ["predict", "--ckpt_path", str(tmp / "last.ckpt")]


def _untrusted_module(tmp: Path) -> str:
    """A module on sys.path whose import leaves a marker file: proof that code ran."""
    (tmp / "payload_pkg.py").write_text(
        f"open({str(tmp / MARKER)!r}, 'w').close()\nclass Task: pass\n"
    )
    return "payload_pkg.Task"


def _stored_config_names_untrusted(tmp: Path) -> list[str]:
    path = _untrusted_module(tmp)
    ckpt = torch.load(_checkpoint(), weights_only=True)
    ckpt["lbp_motion"]["config"] = ckpt["lbp_motion"]["config"].replace(
        "lbp_motion.tasks.ClassificationTask", path, 1
    )
    assert path in ckpt["lbp_motion"]["config"]
    torch.save(ckpt, tmp / "last.ckpt")
    return ["predict", "--ckpt_path", str(tmp / "last.ckpt")]


def _config_names_untrusted(tmp: Path) -> list[str]:
    path = _untrusted_module(tmp)
    (tmp / "x.yaml").write_text(f"model:\n  class_path: {path}\n")
    return ["fit", "--config", str(tmp / "x.yaml"), "--data.root", str(_tiny_data())]


def _bytes_file(data: bytes):
    def setup(tmp: Path) -> list[str]:
        (tmp / "model.ckpt").write_bytes(data)
        return ["predict", "--ckpt_path", str(tmp / "model.ckpt")]

    return setup


def _truncated(tmp: Path) -> list[str]:
    data = _checkpoint().read_bytes()
    return _bytes_file(data[: len(data) // 2])(tmp)


def _keyless(tmp: Path) -> list[str]:
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp / "model.ckpt")
    return ["predict", "--ckpt_path", str(tmp / "model.ckpt")]


def _yaml_syntax_error(tmp: Path) -> list[str]:
    (tmp / "bad.yaml").write_text(
        "model:\n  class_path: lbp_motion.tasks.ClassificationTask\n   init_args: [1, 2\n"
    )
    return ["fit", "--config", str(tmp / "bad.yaml")]


def _no_marker(tmp: Path) -> None:
    assert not (tmp / MARKER).exists(), "code from the file ran"


CASES = [
    Case(
        "crafted-checkpoint-runs-nothing",
        _crafted,
        r"last\.ckpt: refused: .*GLOBAL posix\.system",
        check=_no_marker,
    ),
    Case(
        "stored-config-names-untrusted-module",
        _stored_config_names_untrusted,
        r"stored config\): model\.class_path = 'payload_pkg\.Task' names code outside .*--trust_module payload_pkg",
        check=_no_marker,
    ),
    Case(
        "config-names-untrusted-module",
        _config_names_untrusted,
        r"x\.yaml: model\.class_path = 'payload_pkg\.Task' names code outside",
        check=_no_marker,
    ),
    Case(
        "random-bytes-checkpoint",
        _bytes_file(os.urandom(4096)),
        r"model\.ckpt: not a PyTorch checkpoint",
    ),
    Case("empty-checkpoint", _bytes_file(b""), r"model\.ckpt: the checkpoint file is empty"),
    Case(
        "truncated-checkpoint",
        _truncated,
        r"model\.ckpt: not a PyTorch checkpoint \(not a zip archive",
    ),
    Case("checkpoint-without-lbp-entry", _keyless, r"model\.ckpt: not an lbp_motion checkpoint"),
    Case(
        "missing-checkpoint-file",
        lambda tmp: ["test", "--ckpt_path", str(tmp / "nope.ckpt")],
        r"nope\.ckpt: no such checkpoint file",
    ),
    Case(
        "predict-without-ckpt-path",
        lambda tmp: ["predict"],
        r"give --ckpt_path CHECKPOINT .* or --config FILE",
    ),
    Case(
        "remote-checkpoint",
        lambda tmp: ["predict", "--ckpt_path", "https://example.org/x.ckpt"],
        r"local checkpoint files only",
    ),
    Case(
        "yaml-syntax-error", _yaml_syntax_error, r"bad\.yaml: not valid YAML at line 3, column \d+"
    ),
    Case(
        "missing-config-file",
        lambda tmp: ["fit", "--config", str(tmp / "none.yaml")],
        r"none\.yaml: no such config file",
    ),
    Case(
        "negative-max-epochs",
        _fit("--trainer.max_epochs", "-3"),
        r"trainer\.max_epochs = -3: expected a positive",
    ),
    Case("zero-max-epochs", _fit("--trainer.max_epochs", "0"), r"trainer\.max_epochs = 0"),
    Case("negative-lr", _fit("--model.lr", "-0.001"), r"lr.*-0\.001"),
    Case(
        "weights-only-false",
        _fit("--weights_only", "false"),
        r"weights_only = False: lbp reads checkpoints as tensors",
    ),
    Case(
        "lr-1e30-diverges",
        _fit("--model.lr", "1e30", "--model.lr_decay", "1"),
        r"training loss is (nan|inf).*lower model\.lr",
    ),
]


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reliability(case, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))  # an untrusted module *could* be imported
    replay(case, tmp_path, capsys)


@pytest.mark.e2e
def test_trust_module_lets_the_user_opt_in(tmp_path, capsys, monkeypatch):
    """The explicit flag is the only way past the allow-list: with it, the import happens."""
    from tests.reliability.harness import run_lbp

    monkeypatch.syspath_prepend(str(tmp_path))
    argv = _config_names_untrusted(tmp_path)
    assert run_lbp([*argv, "--trust_module", "payload_pkg"]) != 0  # not a task class: refused later
    assert (tmp_path / MARKER).exists()


def test_commands_that_build_classes_from_arguments_take_the_trust_flag_too(tmp_path, monkeypatch):
    """lbp cv builds each fold's DataModule from the same arguments as its lbp fit: the
    flag is taken out there as well (not an unrecognised argument), and it still decides."""
    from lbp_motion import runs
    from lbp_motion.trust import UntrustedFileError

    monkeypatch.syspath_prepend(str(tmp_path))
    _untrusted_module(tmp_path)
    (tmp_path / "x.yaml").write_text("data:\n  class_path: payload_pkg.Task\n")
    with pytest.raises(UntrustedFileError, match="payload_pkg"):
        runs.build([ATTENTION_SMALL, tmp_path / "x.yaml"])
    assert not (tmp_path / MARKER).exists()
    built = runs.build(
        ATTENTION_SMALL, args=["--trust_module", "payload_pkg", "--run.wandb", "disabled"]
    )
    assert type(built.datamodule).__name__ == "TUGDataModule"
