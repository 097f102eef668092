"""Copy-only task of the template: git repository, sample data, DVC pointer, first commit.

Runs in the new project with copier's own interpreter. Every step checks what
exists first, so running it twice changes nothing.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

RAW_DIR = Path("data/raw")


def run(*cmd: str) -> bool:
    return subprocess.run(cmd, check=False).returncode == 0


def quiet(*cmd: str) -> bool:
    return subprocess.run(cmd, check=False, capture_output=True).returncode == 0


def ensure_git() -> None:
    """Make the project its own repository, even when generated inside another one."""
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=False)
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != Path.cwd().resolve():
        run("git", "init", "--quiet", "--initial-branch=main")


def ensure_sample_data() -> Path:
    """Write the sample set where params.yaml's ingest.source points, unless something is there."""
    source = Path(yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))["ingest"]["source"])
    if not source.exists() and not Path(f"{RAW_DIR}.dvc").exists():
        package = next(Path("src").glob("*/sample_data.py"))
        run(sys.executable, str(package), str(source))
        print(f"wrote the sample data set {source}")
    return source


def ensure_dvc_tracking() -> bool:
    """Track data/raw with DVC and push it to the default remote.

    In-process through DVC's API when copier's environment has DVC (one start-up
    instead of two), else with a `dvc` found on PATH.
    """
    pointer = f"{RAW_DIR}.dvc"
    if Path(pointer).exists():
        return True
    if importlib.util.find_spec("dvc") is not None:
        from dvc.repo import Repo

        with Repo(".") as repo:
            repo.add(str(RAW_DIR))
            try:
                repo.push(targets=[pointer])
            except Exception as exc:  # any remote failure still leaves a valid project
                print(
                    f"The sample data is tracked but not pushed ({exc}): run `dvc push` once the remote is reachable."
                )
        return True
    dvc = shutil.which("dvc")
    if dvc is None:
        print("DVC is not installed beside copier: `make all` will track data/raw with DVC.")
        return False
    if not run(dvc, "add", "--quiet", str(RAW_DIR)):
        return False
    if not run(dvc, "push", "--quiet", pointer):
        print("The sample data is tracked but not pushed: run `dvc push` once the remote is reachable.")
    return True


def first_commit(data_tracked: bool) -> None:
    if quiet("git", "rev-parse", "--verify", "HEAD"):
        return
    if not quiet("git", "var", "GIT_AUTHOR_IDENT"):
        print("git has no user.name/user.email: commit the generated files yourself.")
        return
    # Raw data belongs in DVC, never in git.
    run("git", "add", "--all", "--", ".", *([] if data_tracked else [f":!{RAW_DIR}"]))
    run("git", "commit", "--quiet", "--no-verify", "-m", "Start the project from the MLOps template")


def main() -> int:
    ensure_git()
    ensure_sample_data()
    first_commit(ensure_dvc_tracking())
    return 0


if __name__ == "__main__":
    sys.exit(main())
