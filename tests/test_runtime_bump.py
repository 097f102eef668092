"""A runtime release reaches a project as Renovate's pull request: the tag in pyproject.toml and uv.lock, no other file.

The project's runtime is a git dependency at a release tag (`[tool.uv.sources]`). Renovate's pep621 manager reads
that table and looks the tags up with `git ls-remote` (git-tags datasource; github.com and gitlab.com URLs go to
their tag APIs instead, which are not reachable here). This test runs Renovate itself, offline, on a project of a
fork on a private git host: git fetches the fork's URL from a local clone of the working tree, to which the test
adds runtime releases. Renovate's local platform only looks updates up; the test then makes the change Renovate's
branch makes (the new tag, then its lock command) and checks the diff and the installed runtime.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, generate, run, working_tree_clone
from .test_renovate import renovate_config

pytestmark = pytest.mark.slow

FORK_URL = "https://git.example.com/platform/mlops-template.git"
RENOVATE = REPO_ROOT / "node_modules" / ".bin" / "renovate"
SERVER = Path("runtime/src/mlops_runtime/serving/server.py")
# Renovate's artifact command for an updated uv source (its pep621 manager's uv processor).
LOCK_UPDATE = ["uv", "lock", "--upgrade-package", "mlops-runtime"]
# The project's own check of the runtime it installed against the range its files are written for.
RANGE_TEST = "tests/test_runtime_release.py"


def git_env(clone: Path) -> dict[str, str]:
    """git (and uv's and Renovate's git) fetches FORK_URL from `clone`, next to the mappings already in place."""
    count = int(os.environ.get("GIT_CONFIG_COUNT", "0"))
    return {
        "GIT_CONFIG_COUNT": str(count + 1),
        f"GIT_CONFIG_KEY_{count}": f"url.{clone}.insteadOf",
        f"GIT_CONFIG_VALUE_{count}": FORK_URL,
    }


def release_runtime(fork: Path, version: str, server_line: str) -> str:
    """A runtime release in the fork: its version, a change to the server, the tag."""
    pyproject = fork / "runtime" / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(re.sub(r'(?m)^version = "[^"]+"', f'version = "{version}"', text, count=1), encoding="utf-8")
    with (fork / SERVER).open("a", encoding="utf-8") as server:
        server.write(f"\n{server_line}\n")
    run(["git", "commit", "--quiet", "--no-verify", "-am", f"Runtime {version}"], cwd=fork)
    run(["git", "tag", f"v{version}"], cwd=fork)
    return f"v{version}"


def renovate_lookup(project: Path, env: dict[str, str], base: Path) -> list[dict]:
    """The dependencies Renovate finds in pyproject.toml, with the updates it proposes (its debug log, as JSON)."""
    out = run(
        [str(RENOVATE), "--platform=local"],
        cwd=project,
        env={**env, "LOG_LEVEL": "debug", "LOG_FORMAT": "json", "RENOVATE_BASE_DIR": str(base)},
        timeout=600,
    )
    for line in out.splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if record.get("msg") == "packageFiles with updates":
            return [dep for package_file in record["config"]["pep621"] for dep in package_file["deps"]]
    raise AssertionError(f"Renovate printed no lookup result:\n{out[-3000:]}")


def changed_files(project: Path) -> set[str]:
    return {line[3:] for line in run(["git", "status", "--porcelain"], cwd=project).splitlines()}


def set_runtime_tag(project: Path, old: str, new: str) -> None:
    """Renovate's replacement: the dependency's current value, in its [tool.uv.sources] entry."""
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    assert text.count(f'tag = "{old}"') == 1, text
    pyproject.write_text(text.replace(f'tag = "{old}"', f'tag = "{new}"'), encoding="utf-8")


def test_renovate_proposes_a_runtime_release_as_a_two_file_change(tmp_path: Path) -> None:
    assert RENOVATE.is_file(), "npm ci installs Renovate (package.json)"
    fork = tmp_path / "fork"
    run(["git", "clone", "--quiet", str(working_tree_clone().path), str(fork)], cwd=tmp_path)
    current = working_tree_clone().newest
    env = git_env(fork)

    project = generate(tmp_path / "project", runtime_source=FORK_URL)
    run(["uv", "lock"], cwd=project, env=env, timeout=900)
    config = renovate_config()
    # Offline: only the runtime is looked up (the other dependencies would ask PyPI and the GitHub API).
    config["packageRules"] = [
        {"matchDepNames": ["*"], "enabled": False},
        {"matchDepNames": ["mlops-runtime"], "enabled": True},
    ]
    (project / "renovate.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    run(["git", "init", "--quiet"], cwd=project)
    run(["git", "add", "--all"], cwd=project)
    run(["git", "commit", "--quiet", "--no-verify", "-m", "Generated"], cwd=project)

    major, minor, micro = (int(part) for part in current.removeprefix("v").split("."))
    patch = release_runtime(fork, f"{major}.{minor}.{micro + 1}", "# A fix in the server.")
    found = renovate_lookup(project, env, tmp_path / "renovate")
    runtime_deps = [dep for dep in found if dep["depName"] == "mlops-runtime"]
    assert runtime_deps, "Renovate found no mlops-runtime in pyproject.toml"
    for dep in runtime_deps:
        assert dep["datasource"] == "git-tags" and dep["packageName"] == FORK_URL, dep
        assert dep["currentValue"] == current, dep
        assert [update["newValue"] for update in dep["updates"]] == [patch], dep

    set_runtime_tag(project, current, patch)
    run(LOCK_UPDATE, cwd=project, env=env, timeout=900)
    assert changed_files(project) == {"pyproject.toml", "uv.lock"}
    lock = (project / "uv.lock").read_text(encoding="utf-8")
    assert f"{FORK_URL}?subdirectory=runtime&tag={patch}" in lock
    assert str(tmp_path) not in lock, "uv.lock must hold no machine path"

    # The project installs the released server from the lock, as its image does.
    run(["uv", "sync", "--locked", "--no-dev"], cwd=project, env=env, timeout=1200)
    installed = run(
        [
            ".venv/bin/python",
            "-c",
            "import importlib.metadata as m, mlops_runtime.serving.server as s;"
            " print(m.version('mlops-runtime')); print(s.__file__)",
        ],
        cwd=project,
    ).split()
    assert installed[0] == patch.removeprefix("v")
    assert Path(installed[1]).read_text(encoding="utf-8") == (fork / SERVER).read_text(encoding="utf-8")
    run(["git", "commit", "--quiet", "--no-verify", "-am", f"Runtime {patch}"], cwd=project)

    # The project's test of its range passes on the patch release and refuses a minor one, which uv installs
    # all the same (a git source's tag wins over the version range): CI fails Renovate's pull request.
    range_test = ["uv", "run", "--locked", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider", RANGE_TEST]
    run(["uv", "sync", "--locked", "--extra", "dev"], cwd=project, env=env, timeout=1200)
    run(range_test, cwd=project, env=env)
    next_minor = release_runtime(fork, f"{major}.{minor + 1}.0", "# A change of what projects must say.")
    set_runtime_tag(project, patch, next_minor)
    run(LOCK_UPDATE, cwd=project, env=env, timeout=900)
    run(["uv", "sync", "--locked", "--extra", "dev"], cwd=project, env=env, timeout=1200)
    failed = run_failing(range_test, project, env)
    assert f"mlops-runtime {major}.{minor + 1}.0 is installed" in failed, failed
    assert f"mlops-runtime~={current.removeprefix('v')}" in failed, failed


def run_failing(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a command that must fail; its output."""
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900, env={**os.environ, **env})
    assert done.returncode != 0, f"{cmd} succeeded:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr
