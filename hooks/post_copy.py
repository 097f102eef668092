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
# Where `make setup` installs uv when it is not on PATH.
VENV_UV = Path(".venv/bin/uv")


def run(*cmd: str) -> bool:
    return subprocess.run(cmd, check=False).returncode == 0


SAMPLE_DATA = Path(__file__).resolve().parents[1] / "runtime" / "src" / "mlops_runtime" / "sample_data.py"


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
        # The runtime's generator, from the template being copied (the project has no runtime installed yet).
        run(sys.executable, str(SAMPLE_DATA), str(source))
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


def project_uv(python_version: str | None) -> str | None:
    """uv from PATH, else the one in the project's .venv, installed there from PyPI with pip as `make setup` does."""
    found = shutil.which("uv") or (str(VENV_UV) if VENV_UV.is_file() else None)
    if found:
        return found
    print("uv is not on PATH: installing it into .venv with pip, to write uv.lock")
    python = Path(".venv/bin/python")
    if not python.is_file():
        # The interpreter `make setup` creates .venv with.
        candidates = [f"python{python_version}"] if python_version else []
        base = next((path for name in [*candidates, "python3"] if (path := shutil.which(name))), sys.executable)
        if not quiet(base, "-m", "venv", ".venv"):
            return None
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "uv"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        print(f"uv could not be installed ({(done.stderr.strip().splitlines() or ['pip failed'])[-1]})")
        return None
    return str(VENV_UV)


def ensure_lock() -> None:
    """Resolve uv.lock, the versions `make setup` and the image install, so that the first commit pins them.

    Resolved against the package index, or from uv's cache when the index is out of reach. Without uv on
    PATH, uv is first installed into the project's .venv (where `make setup` finds it).
    """
    if Path("uv.lock").exists():
        return
    answers = yaml.safe_load(Path(".copier-answers.yml").read_text(encoding="utf-8")) or {}
    version = str(answers["python_version"]) if "python_version" in answers else None
    uv = project_uv(version)
    if uv is None:
        print("uv.lock not written: `make setup` installs uv and writes it; commit it then (`make all` lists it).")
        return
    # The interpreter `make setup` uses; an installed one, as there, never a download.
    cmd = [uv, "lock", "--quiet", *(["--python", version] if version else [])]
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
