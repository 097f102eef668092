"""The project the runtime runs for: the package that holds its stages (`<package>.stages`) and its hooks.

A project's `python -m <package>` names itself (`cli.main(project=...)`); the name is then in the environment,
so that what the command starts (the server's workers, a drift job) runs for the same project. Without it,
the one installed distribution that declares an `mlops_runtime.project` entry point names the project, else the
one package with stages under the working directory's src/ (a checkout run with PYTHONPATH=src).
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path

from .errors import ParamsError

PROJECT_ENV = "MLOPS_RUNTIME_PROJECT"
ENTRY_POINT_GROUP = "mlops_runtime.project"


def bind(package: str) -> None:
    os.environ[PROJECT_ENV] = package


def package() -> str:
    """The project's import name, for its stages and for the commands the runtime prints (`python -m <package>`)."""
    if named := os.environ.get(PROJECT_ENV):
        return named
    declared = sorted({point.value for point in entry_points(group=ENTRY_POINT_GROUP)})
    if len(declared) == 1:
        return declared[0]
    found = sorted(path.parent.parent.name for path in Path.cwd().glob("src/*/stages/__init__.py"))
    if not declared and len(found) == 1:
        return found[0]
    raise ParamsError(
        f"no project is named: run the project's own command (python -m <package> ...), or set {PROJECT_ENV} to its "
        f"package ({'installed: ' + ', '.join(declared) if declared else 'no installed project declares one'})"
    )
