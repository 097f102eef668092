"""Render: the YAML of the workflows pipelines/*.py build, as Argo CD and reviewers read it, and its staleness check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ParamsError


def render(workflows: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write each workflow's YAML as <out_dir>/<file name>.yaml."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, workflow in workflows.items():
        path = out_dir / f"{filename}.yaml"
        path.write_text(workflow.to_yaml(), encoding="utf-8")
        written.append(path)
    return written


def stale(workflows: dict[str, Any], out_dir: Path) -> list[str]:
    """Snapshots that differ from what the modules build now."""
    return [
        f"{out_dir / name}.yaml"
        for name, workflow in workflows.items()
        if not (out_dir / f"{name}.yaml").exists()
        or (out_dir / f"{name}.yaml").read_text(encoding="utf-8") != workflow.to_yaml()
    ]


def load_module(root: Path, name: str) -> Any:
    """A workflow module of pipelines/ (they sit outside the package, beside dvc.yaml)."""
    import importlib.util

    path = root / "pipelines" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"pipelines.{name}", path)
    if spec is None or spec.loader is None:
        raise ParamsError(f"{path} not found: run from the project root")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def workflows(root: Path) -> dict[str, Any]:
    """Every workflow the project defines, by file name."""
    return {path.stem: load_module(root, path.stem).workflow for path in sorted((root / "pipelines").glob("*.py"))}


def render_command(root: Path, out: Path, check: bool) -> str:
    """`pipeline render [--check]`: write every workflow's YAML, or fail if what is on disk is stale."""
    built = workflows(root)
    if check:
        out_of_date = stale(built, out)
        if out_of_date:
            raise ParamsError(f"out of date: {', '.join(out_of_date)}; run `make render` and commit")
        return f"{len(built)} workflow(s) up to date in {out}"
    return "\n".join(f"wrote {path}" for path in render(built, out))
