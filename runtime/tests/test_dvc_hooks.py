"""DVC's post-checkout hook as the project runs it: a corrupt dvc.lock is one clear line, and the switch completes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def test_corrupt_dvc_lock_is_named_in_one_line(tmp_path: Path) -> None:
    """git switch to a commit whose dvc.lock is broken YAML: the hook names the file and line, no traceback."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    hook = hooks / "post-checkout"
    hook.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mlops_runtime.dvc_hooks post-checkout "$@"\n')
    hook.chmod(0o755)
    root = tmp_path / "project"
    root.mkdir()
    assert git(root, "init", "--quiet", "--initial-branch=main").returncode == 0
    subprocess.run([sys.executable, "-m", "dvc", "init", "--quiet"], cwd=root, check=True)
    (root / "dvc.yaml").write_text("stages:\n  hello:\n    cmd: echo hi > out.txt\n    outs:\n      - out.txt\n")
    git(root, "add", ".")
    assert git(root, "commit", "--quiet", "-m", "Pipeline").returncode == 0
    git(root, "switch", "--quiet", "-c", "broken")
    (root / "dvc.lock").write_text("schema: '2.0'\nstages:\n  hello: [unclosed\n   : :\n")
    git(root, "add", "dvc.lock")
    assert git(root, "commit", "--quiet", "-m", "Broken lock").returncode == 0
    git(root, "switch", "--quiet", "main")

    done = git(root, "-c", f"core.hooksPath={hooks}", "switch", "broken")

    assert git(root, "branch", "--show-current").stdout.strip() == "broken"  # the switch itself completed
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr, done.stderr
    message = next(line for line in lines if "DVC checkout" in line)
    assert "dvc.lock" in message and "line 4" in message and "git checkout -- <file>" in message, done.stderr
