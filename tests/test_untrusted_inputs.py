"""Workflow inputs and make variables are data: `$(shell ...)` and backticks in any of them run nothing."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import generate

# Each make target that takes values, and the variables it passes on to the CLI.
TARGETS = {
    "promote": ["ENV", "VERSION", "COMMIT", "WAIT", "REASON", "BODY"],
    "promote-check": ["BASE", "BODY"],
    "promote-diff": ["ENV", "BODY"],
    "serve": ["ENV", "PORT"],
    "monitor": ["REFERENCE"],
    "submit": ["REVISION"],
    "schemas": ["SCHEMAS_COMMIT"],
}
# Stands in for the project's Python: records the arguments make's recipe gave it.
FAKE_PYTHON = """#!/bin/sh
printf '%s\\n' "$@" > "$ARGV_FILE"
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rendered project whose environment is a recorder: recipes run, nothing is installed."""
    root = generate(tmp_path_factory.mktemp("inputs") / "project")
    bin_dir = root / ".venv/bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "python").chmod(0o755)
    # Newer than pyproject.toml: `setup` has nothing to do.
    (root / ".venv/.installed").touch()
    return root


def hostile(sentinel: Path) -> list[str]:
    return [f"$(shell touch {sentinel})", f"`touch {sentinel}`", f"$$(touch {sentinel})", f"'; touch {sentinel}; '"]


def run_make(root: Path, target: str, cmdline: dict[str, str], environ: dict[str, str], argv: Path) -> list[str]:
    env = {**os.environ, **environ, "ARGV_FILE": str(argv)}
    args = [f"{name}={value}" for name, value in cmdline.items()]
    done = subprocess.run(["make", target, *args], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return argv.read_text().splitlines()


@pytest.mark.parametrize("way", ["command-line", "environment"])
@pytest.mark.parametrize("target", list(TARGETS))
def test_values_reach_the_cli_literally(project: Path, tmp_path: Path, target: str, way: str) -> None:
    """Every value a target takes reaches the CLI unchanged, as one argument, and runs nothing on the way."""
    sentinel = tmp_path / "SENTINEL"
    for attack in hostile(sentinel):
        values = {name: attack for name in TARGETS[target]}
        cmdline, environ = (values, {}) if way == "command-line" else ({}, values)
        argv = run_make(project, target, cmdline, environ, tmp_path / "argv")
        assert not sentinel.exists(), f"{attack!r} in {target} ran a command"
        # Every variable given is passed on whole (WAIT and PORT are validated by the CLI as numbers).
        assert argv.count(attack) == len(TARGETS[target]), (attack, argv)


def test_workflows_hand_inputs_to_make_by_environment_only(project: Path) -> None:
    """No workflow step puts a value on make's command line or pastes an expression into a script."""
    for path in (project / ".github/workflows").glob("*.yml"):
        flow = yaml.safe_load(path.read_text())
        for job in flow["jobs"].values():
            for step in job.get("steps", []):
                script = step.get("run", "")
                assert "${{" not in script, f"{path.name}: {step.get('name')}: expression pasted into the script"
                for line in script.splitlines():
                    if re.match(r"\s*make\b", line):
                        assert not re.search(r"\b[A-Z_]+=", line), f"{path.name}: {line.strip()}: use env: instead"
