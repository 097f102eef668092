"""The runtime's layout: one folder per part of the lifecycle, imports that only point down, a docstring each."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mlops_runtime

PACKAGE = "mlops_runtime"
SOURCE = Path(mlops_runtime.__file__).parent
# Top to bottom: a module may import its own part and any part below it, never one above.
LAYERS = [
    ["bench"],
    ["cli"],
    ["serving"],
    ["argo"],
    ["release"],
    ["monitoring"],
    ["registry"],
    ["lineage", "sample_data", "dvc_hooks", "card"],
    ["files", "extensions"],
    ["config"],
    ["criteria_config"],
    ["section"],
    ["project"],
    ["errors", "text"],
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def modules() -> dict[str, Path]:
    """Dotted name inside the package -> file, for every module of the package."""
    found = {}
    for path in sorted(SOURCE.rglob("*.py")):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """The package modules `name` imports (dotted names inside the package), relative or absolute."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
                module = node.module.removeprefix(PACKAGE).lstrip(".")
            else:
                continue
            names = [alias.name for alias in node.names]
            # `from . import x` names a module; `from .x import y` names x.
            targets |= {f"{module}.{n}".lstrip(".") for n in names if f"{module}.{n}".lstrip(".") in modules()}
            if module:
                targets.add(module)
        elif isinstance(node, ast.Import):
            targets |= {a.name.removeprefix(PACKAGE + ".") for a in node.names if a.name.startswith(PACKAGE + ".")}
    return {t for t in targets if t and t != name}


def part(name: str) -> str:
    return name.split(".")[0] or name


def test_every_module_is_placed() -> None:
    """A new top-level module or folder gets a layer here, so its place in the order is a decision."""
    unplaced = sorted({part(name) for name in modules() if name and part(name) not in RANK})
    assert not unplaced, f"add {unplaced} to LAYERS in this test, at the level of what it may import"


@pytest.mark.parametrize("name", sorted(n for n in modules() if n))
def test_imports_point_down(name: str) -> None:
    upward = sorted(t for t in imports(name, modules()[name]) if RANK[part(t)] < RANK[part(name)])
    assert not upward, f"{name} imports {upward}, which sit above it in LAYERS: move the shared code down"


def test_no_import_cycles() -> None:
    graph = {name: imports(name, path) for name, path in modules().items() if name}
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in trail:
            raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(name) :], name]))
        if name in done:
            return
        for target in graph.get(name, ()):
            visit(target, (*trail, name))
        done.add(name)

    for name in graph:
        visit(name, ())


@pytest.mark.parametrize("name", sorted(modules()))
def test_every_module_says_what_it_is_for(name: str) -> None:
    path = modules()[name]
    assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))), f"{path} has no module docstring"
