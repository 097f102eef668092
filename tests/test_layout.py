"""The shape of the split: runtime modules a reader can hold, a thin project whose ML code is its largest part."""

from __future__ import annotations

from pathlib import Path

from .conftest import REPO_ROOT, generate

RUNTIME_MODULES = sorted((REPO_ROOT / "runtime" / "src" / "mlops_runtime").rglob("*.py"))
MODULE_LINES = 400
PROJECT_LINES = 1500


def lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_every_runtime_module_stays_readable() -> None:
    assert len(RUNTIME_MODULES) > 30
    long = {p.relative_to(REPO_ROOT).as_posix(): lines(p) for p in RUNTIME_MODULES if lines(p) > MODULE_LINES}
    assert not long, f"runtime modules over {MODULE_LINES} lines (split them by concern): {long}"


def test_a_default_project_is_thin_and_mostly_its_own_ml(tmp_path: Path) -> None:
    project = generate(tmp_path / "project")
    code = [*(project / "src").rglob("*.py"), *(project / "pipelines").rglob("*.py")]
    total = sum(lines(p) for p in code)
    package = next((project / "src").iterdir())
    stages = sum(lines(p) for p in (package / "stages").rglob("*.py"))
    rest = {p.relative_to(project).as_posix(): lines(p) for p in code if "stages" not in p.parts}
    assert total <= PROJECT_LINES, f"{total} lines of Python in src/ and pipelines/"
    assert stages > max(rest.values()), (stages, rest)
    assert stages > total / 2, (stages, total)
