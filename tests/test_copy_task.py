"""The copy task: a git repository with its first commit, sample data in DVC, safe to rerun."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, generate, run

POST_COPY = REPO_ROOT / "hooks" / "post_copy.py"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("copied")
    with pytest.MonkeyPatch.context() as patch:
        for role in ("AUTHOR", "COMMITTER"):
            patch.setenv(f"GIT_{role}_NAME", "Template Tests")
            patch.setenv(f"GIT_{role}_EMAIL", "tests@example.com")
        generate(base / "project", base / "remote", tasks=True)
    return base / "project", base / "remote"


def git(project: Path, *args: str) -> str:
    return run(["git", *args], cwd=project).strip()


def test_first_commit_has_everything_but_raw_data(project: tuple[Path, Path]) -> None:
    """One commit, a clean tree, the DVC pointer in git and the raw data kept out of it."""
    root, _ = project
    assert git(root, "rev-list", "--count", "HEAD") == "1"
    assert git(root, "status", "--porcelain") == ""
    tracked = git(root, "ls-files").splitlines()
    assert "data/raw.dvc" in tracked and ".copier-answers.yml" in tracked
    assert not [path for path in tracked if path.startswith("data/raw/")]
    # The versions `make setup` and the image install are pinned from the start.
    assert "uv.lock" in tracked


def test_sample_data_is_in_the_remote(project: tuple[Path, Path]) -> None:
    """The sample data set is pushed to the default local remote, outside the project."""
    root, remote = project
    assert (root / "data/raw/customers.csv").stat().st_size > 100_000
    assert sum(1 for p in remote.rglob("*") if p.is_file()) >= 2  # the directory listing and the file


def test_fresh_clone_pulls_the_data(project: tuple[Path, Path], tmp_path: Path) -> None:
    """`dvc pull` in a fresh clone brings back the same bytes (no pipeline outputs exist yet)."""
    root, _ = project
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", str(root), str(clone)], cwd=tmp_path)
    assert not (clone / "data/raw/customers.csv").exists()
    run([sys.executable, "-m", "dvc", "pull", "--quiet", "--allow-missing"], cwd=clone)
    assert (clone / "data/raw/customers.csv").read_bytes() == (root / "data/raw/customers.csv").read_bytes()


def test_rerunning_the_task_changes_nothing(project: tuple[Path, Path]) -> None:
    """The copy task is idempotent: same commit, same pointer, clean tree."""
    root, _ = project
    head, pointer = git(root, "rev-parse", "HEAD"), (root / "data/raw.dvc").read_text()
    run([sys.executable, str(POST_COPY)], cwd=root)
    assert git(root, "rev-parse", "HEAD") == head
    assert (root / "data/raw.dvc").read_text() == pointer
    assert git(root, "status", "--porcelain") == ""


def test_without_dvc_the_raw_data_stays_out_of_git(tmp_path: Path) -> None:
    """When copier's environment has no DVC, the task commits the project but not the raw data."""
    root = generate(tmp_path / "project", tmp_path / "remote")
    hide_dvc = (
        "import importlib.util, runpy, shutil, sys;"
        "find = importlib.util.find_spec;"
        "importlib.util.find_spec = lambda name, *a: None if name == 'dvc' else find(name, *a);"
        "shutil.which = lambda *a, **k: None;"
        f"runpy.run_path({str(POST_COPY)!r}, run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", hide_dvc], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "make all" in done.stdout
    tracked = git(root, "ls-files").splitlines()
    assert "params.yaml" in tracked
    assert not [path for path in tracked if path.startswith("data/")]
    assert (root / "data/raw/customers.csv").exists()


def test_project_inside_another_repository_gets_its_own(tmp_path: Path) -> None:
    """Generated inside an existing repository (a monorepo, a build folder), the project is still its own repo."""
    run(["git", "init", "--quiet", str(tmp_path)], cwd=tmp_path)
    (tmp_path / ".gitignore").write_text("build/\n")
    root = generate(tmp_path / "build" / "project", tmp_path / "remote", tasks=True)
    assert (root / ".git").is_dir()
    assert git(root, "rev-list", "--count", "HEAD") == "1"
    assert "data/raw.dvc" in git(root, "ls-files").splitlines()


@pytest.mark.slow
def test_without_uv_on_path_the_first_commit_still_has_the_lock(tmp_path: Path) -> None:
    """Generated where uv is not on PATH (`pipx install copier`): uv is put in .venv with pip; uv.lock is committed."""
    root = generate(tmp_path / "project", tmp_path / "remote")
    hide_uv = (
        "import runpy, shutil;"
        "which = shutil.which;"
        "shutil.which = lambda name, *a, **k: None if name == 'uv' else which(name, *a, **k);"
        f"runpy.run_path({str(POST_COPY)!r}, run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", hide_uv], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "installing it into .venv" in done.stdout
    assert (root / ".venv/bin/uv").is_file()
    assert "uv.lock" in git(root, "ls-files").splitlines()
    assert git(root, "status", "--porcelain") == ""
