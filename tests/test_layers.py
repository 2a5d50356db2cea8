"""
The product's layers, read from the source (every import, function-local ones included): from the
top, shopbot (the project's wiring) -> owner (the owner's pages) -> widget (the chat) -> faq (the
knowledge) -> lib (small helpers). A module may import its own package and the packages below
it, never one above, never the harness, the tests or the benchmarks; and no modules import each
other in a circle. docs/architecture.md has the map.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["lib", "faq", "widget", "owner", "shopbot"]  # from the bottom
NOT_PRODUCT = {"harness", "tests", "bench"}
# The one exception: the chat benchmark is a management command, and runs the real server.
MAY_IMPORT_HARNESS = {"widget.management.commands.bench_chat"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in LAYERS for path in (ROOT / package).rglob("*.py")
    }


def imports(path: Path, known: set[str]) -> set[str]:
    """The modules `path` imports (a name imported from a package counts as its submodule when
    there is one)."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else base)
    return found


def graph() -> dict[str, set[str]]:
    modules = product_modules()
    known = set(modules)
    return {name: imports(path, known) for name, path in modules.items()}


def layer(module: str) -> str:
    return module.split(".")[0]


def test_no_module_imports_a_layer_above_its_own_or_the_harness():
    wrong = []
    for module, imported in graph().items():
        for target in imported:
            top = layer(target)
            if top in NOT_PRODUCT and module not in MAY_IMPORT_HARNESS:
                wrong.append(f"{module} imports {target}, which is not part of the product")
            elif top in LAYERS and LAYERS.index(top) > LAYERS.index(layer(module)):
                wrong.append(f"{module} imports {target}, a layer above it")
    assert wrong == []


def test_no_modules_import_each_other_in_a_circle():
    modules = graph()
    edges = {
        module: {target for target in imported if target in modules and target != module}
        for module, imported in modules.items()
    }
    try:
        TopologicalSorter(edges).prepare()
    except CycleError as error:
        raise AssertionError(f"import circle: {' -> '.join(error.args[1])}") from None


def test_the_checks_see_an_upward_import_and_a_circle(tmp_path, monkeypatch):
    """The two tests above on a made-up tree: faq importing owner, and two modules in a circle."""
    for name, text in {
        "faq/__init__.py": "",
        "faq/a.py": "def f():\n    from owner import views\n",
        "faq/b.py": "from faq import c\n",
        "faq/c.py": "from faq.b import x\n",
        "owner/__init__.py": "",
        "owner/views.py": "",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    try:
        test_no_module_imports_a_layer_above_its_own_or_the_harness()
    except AssertionError as error:
        assert "faq.a imports owner.views, a layer above it" in str(error)
    else:
        raise AssertionError("the upward import was not seen")
    try:
        test_no_modules_import_each_other_in_a_circle()
    except AssertionError as error:
        assert "faq.b" in str(error) and "faq.c" in str(error)
    else:
        raise AssertionError("the circle was not seen")
