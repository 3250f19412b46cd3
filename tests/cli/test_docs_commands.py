"""Every `lbp fit|validate|test|predict --config ...` example in README.md and docs/
parses as written (flags, config files and their class paths), without a deprecated
spelling: LightningCLI's --print_config checks the whole config and exits."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIGHTNING = ("fit", "validate", "test", "predict")


def _examples() -> list[tuple[str, list[str]]]:
    """(where, argv) of each `lbp <lightning command>` line in a fenced block whose
    --config files are all in the repository (examples that name the user's own files,
    placeholders or a checkpoint of an earlier run are left out)."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```[a-z]*\n(.*?)```", path.read_text(), re.S):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                line = line.split("  #")[0].split(" # ")[0].strip()
                if not line.startswith("lbp ") or "${" in line or "[" in line.split("'")[0]:
                    continue
                try:
                    argv = shlex.split(line)[1:]
                except ValueError:
                    continue
                if not argv or argv[0] not in LIGHTNING or "--ckpt_path" in argv:
                    continue
                configs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
                if configs and all((ROOT / c).is_file() for c in configs):
                    found.append((f"{path.name}: {line[:70]}", argv))
    return found


EXAMPLES = _examples()
pytestmark = pytest.mark.e2e


def test_the_docs_have_examples_to_check():
    assert len(EXAMPLES) >= 25  # the README's and every page's runnable examples


@pytest.mark.parametrize("argv", [a for _, a in EXAMPLES], ids=[w for w, _ in EXAMPLES])
def test_a_documented_command_parses_as_written(argv, capsys, monkeypatch):
    from lbp_motion.cli import main

    monkeypatch.chdir(ROOT)
    try:
        code = main([*argv, "--print_config"])
    except SystemExit as stop:  # LightningCLI exits after printing
        code = stop.code
    out, err = capsys.readouterr()
    assert code in (0, None), err
    assert "seed_everything" in out  # the printed config
    assert "deprecated" not in err.lower(), err
