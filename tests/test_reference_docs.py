"""docs/reference covers the package: every module of lbp_motion has its API section."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_module_has_a_reference_section():
    documented = set()
    for page in (ROOT / "docs" / "reference").glob("*.md"):
        documented |= set(re.findall(r"^::: (lbp_motion[\w.]*)$", page.read_text(), flags=re.M))
    package = ROOT / "lbp_motion"
    modules = set()
    for path in package.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") for p in parts[1:]):  # private: _version, _moved, __main__
            continue
        modules.add(".".join(parts))
    modules.discard("lbp_motion")
    assert sorted(modules - documented) == []
    assert sorted(documented - modules) == []  # no section for a module that moved away
