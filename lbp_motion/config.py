"""Config files and checkpoint configs as ``lbp`` reads them: YAML read with one clear
error, jsonargparse's parse errors as one line, the ``--trust_module`` option, and the
config stored in an lbp checkpoint (``lbp test --ckpt_path X`` without ``--config``)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser

from lbp_motion.errors import ConfigError
from lbp_motion.trust import check_class_paths, lbp_info, load_checkpoint

#: Subcommands that read a checkpoint (``--ckpt_path``); its stored config is used when
#: no ``--config`` is given.
CHECKPOINT_COMMANDS = {"validate", "test", "predict"}

_NOISE = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Given value",
    "- Expected a <class 'NoneType'>",
    "- Problem with given class_path",
    "Problem with given class_path",
    "tip:",
)


def one_line_error(message: str) -> str:
    """jsonargparse's nested, multi-line parse error as one line: the dotted field and the
    innermost reason (``model.lr: Not of type PositiveFloat: -0.001 does not conform ...``)."""
    keys: list[str] = []
    for key in re.findall(r'Parser key "([^"]+)"', message):
        if not keys or keys[-1] != key:
            keys.append(key)
    reasons = [
        ln.strip().lstrip("- ").strip()
        for ln in message.splitlines()
        if ln.strip() and "Parser key" not in ln and not ln.strip().startswith(_NOISE)
    ]
    reason = reasons[0] if reasons else " ".join(message.split())
    given = re.findall(r"Given value: (.+)", message)
    if given:
        value = given[-1].strip()
        nested = re.fullmatch(r"NestedArg\(key='[^']*', val='(.*)'\)", value)
        value = nested.group(1) if nested else value
        if len(value) <= 80 and value not in reason:
            reason = f"{reason}, got {value}"
    return f"{'.'.join(keys)}: {reason}" if keys else reason


class LbpArgumentParser(LightningArgumentParser):
    """Parse errors as one line (no usage dump, no nested union report), exit status 2."""

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:
            return super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"{prog}: error: {one_line_error(message)} (see {prog} --help)\n")
        raise SystemExit(2)


def _early_parser(*names: str) -> argparse.ArgumentParser:
    """A parser of the few options lbp must read before LightningCLI's parser exists:
    ``--config``/``-c`` (the files to check before anything is imported from them),
    ``--ckpt_path`` (whose stored config may be the run's) and ``--trust_module``."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    if "config" in names:
        parser.add_argument("--config", "-c", action="append", default=[])
    if "ckpt_path" in names:
        parser.add_argument("--ckpt_path", default=None)
    if "trust_module" in names:
        parser.add_argument("--trust_module", action="append", default=[])
    return parser


def _early(argv: list[str], *names: str) -> tuple[argparse.Namespace, list[str]]:
    """``names`` read from ``argv`` (the last value wins, lists in order), and the rest
    of ``argv`` in order. A malformed use (``--config`` without a file) is left to
    LightningCLI's parser, which names it."""
    try:
        return _early_parser(*names).parse_known_args(argv)
    except argparse.ArgumentError:
        return argparse.Namespace(config=[], ckpt_path=None, trust_module=[]), list(argv)


def config_files(argv: list[str]) -> list[str]:
    """The ``--config``/``-c`` files named in ``argv``, in order."""
    return list(_early(argv, "config")[0].config)


def read_yaml(path: str | Path) -> Any:
    """A YAML config file's data, or one clear error naming the file and the problem."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {err.start}); save the config as UTF-8"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None


def pop_trust(argv: list[str]) -> tuple[list[str], tuple[str, ...]]:
    """Take ``--trust_module PACKAGE`` (repeatable) out of ``argv``."""
    known, rest = _early(argv, "trust_module")
    return rest, tuple(known.trust_module)


def config_from_checkpoint(argv: list[str], trust: tuple[str, ...] = ()) -> list[str]:
    """Check ``--ckpt_path`` (a local, readable lbp checkpoint) and, for ``lbp
    validate|test|predict --ckpt_path X`` without ``--config``, write the config stored
    in X to a temporary file and put ``--config`` that file in front. The caller
    removes it."""
    if not argv or argv[0] not in CHECKPOINT_COMMANDS | {"fit"} or "-h" in argv or "--help" in argv:
        return argv
    has_config = bool(config_files(argv))
    ckpt = _early(argv, "ckpt_path")[0].ckpt_path
    if ckpt is None or ckpt in ("best", "last", "null", "hpc", "registry"):
        if not has_config and argv[0] in CHECKPOINT_COMMANDS:
            raise ConfigError(
                f"lbp {argv[0]}: give --ckpt_path CHECKPOINT (the config stored in it is used) or --config FILE"
            )
        return argv
    if "://" in ckpt:
        raise ConfigError(
            f"--ckpt_path {ckpt}: lbp reads local checkpoint files only; download it first"
        )
    ckpt_data = load_checkpoint(ckpt)
    info = lbp_info(ckpt_data, ckpt)
    stored = info.get("config")
    if has_config:
        return argv
    if not isinstance(stored, str) or not stored.strip():
        raise ConfigError(f"{ckpt}: the checkpoint stores no config; give --config FILE too")
    import yaml

    try:
        config = yaml.safe_load(stored)
    except yaml.YAMLError:
        config = None
    if not isinstance(config, dict):
        raise ConfigError(
            f"{ckpt}: lbp_motion.config is not a YAML mapping; give --config FILE too"
        )
    check_class_paths(config, f"{ckpt} (stored config)", extra=trust)
    for key in ("test_after_fit", "ckpt_path", "weights_only"):
        config.pop(key, None)
    for key in ("callbacks", "logger"):
        (config.get("trainer") or {}).pop(key, None)
    fd, path = tempfile.mkstemp(prefix="lbp-ckpt-config-", suffix=".yaml")
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(config, fh)
    return [argv[0], "--config", path, *argv[1:]]
