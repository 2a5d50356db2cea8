"""
docs/architecture.md's map against the tree: every Python module of the product (and of the
harness) has a row, a folder in a row standing for every module under it, and every module or
folder a row names exists. A package's __init__.py that holds nothing but a docstring needs none.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["shopbot", "owner", "widget", "faq", "lib", "harness"]


def named_in_the_map() -> set[str]:
    """The paths in the Module column of the map (the table under "## The map")."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## The map", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3 and not set(cells[1]) <= set("- "):
            names.update(name for name in re.findall(r"`([^`]+)`", cells[1]) if "/" in name)
    return names


def needs_a_row(path: Path) -> bool:
    if path.name != "__init__.py":
        return True
    body = ast.parse(path.read_text()).body
    return any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body
    )


def modules() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if needs_a_row(path):
                found.append(path.relative_to(ROOT).as_posix())
    return found


def test_every_module_has_a_row():
    names = named_in_the_map()

    def covered(module: str) -> bool:
        parts = module.split("/")
        folders = {"/".join(parts[:n]) + "/" for n in range(1, len(parts))}
        return module in names or bool(folders & names)

    assert [module for module in modules() if not covered(module)] == []


def test_every_module_in_the_map_exists():
    names = named_in_the_map()
    assert len(names) > 40  # the table was read
    assert sorted(name for name in names if not (ROOT / name).exists()) == []
