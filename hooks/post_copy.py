"""Copy-only task of the template: git repository, sample data, DVC pointer, uv.lock, first commit.

Runs in the new project with copier's own interpreter. Every step checks what
exists first, so running it twice changes nothing.
"""

from __future__ import annotations

import importlib.util
import os
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


def ensure_lock() -> None:
    """Resolve uv.lock, the versions `make setup` and the image install, so that the first commit pins them.

    Resolved against the package index, or from uv's cache when the index is out of reach. Without uv,
    `make setup` installs with pip and there is no lock until someone runs `uv lock`.
    """
    if Path("uv.lock").exists():
        return
    uv = shutil.which("uv")
    if uv is None:
        print("uv is not on PATH: no uv.lock yet (the image build needs one): run `uv lock` and commit uv.lock.")
        return
    answers = yaml.safe_load(Path(".copier-answers.yml").read_text(encoding="utf-8")) or {}
    # The interpreter `make setup` uses; an installed one, as there, never a download.
    python = ["--python", str(answers["python_version"])] if "python_version" in answers else []
    cmd = [uv, "lock", "--quiet", *python]
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": os.environ.get("UV_PYTHON_DOWNLOADS", "never")}
    attempts = [subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)]
    if attempts[0].returncode != 0:
        attempts.append(subprocess.run([*cmd, "--offline"], capture_output=True, text=True, env=env, check=False))
    if attempts[-1].returncode == 0:
        return
    # The index's answer says more than the cache's.
    reason = (attempts[0].stderr.strip().splitlines() or ["uv lock failed"])[0].removeprefix("error: ")
    print(f"uv.lock not written ({reason}): `make setup` writes it; commit it then (`make all` lists it).")


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
    ensure_lock()
    first_commit(ensure_dvc_tracking())
    return 0


if __name__ == "__main__":
    sys.exit(main())
