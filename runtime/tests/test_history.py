"""Promotion history: which version each environment served, and since when, read from the git log of its pin."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlops_runtime import cli
from mlops_runtime.release.history import pr_number

from .conftest import MODEL_NAME, PROJECT_ROOT

MODEL = MODEL_NAME
PROD = "deploy/overlays/prod/model.yaml"
UNPINNED = 'version: "none"'


def git(root: Path, *args: str, when: str = "2026-01-01T09:00:00+00:00", author: str = "Ada Admin") -> str:
    """Run git as `author` at `when` (author and commit date alike), without the caller's git config."""
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": author,
        "GIT_AUTHOR_EMAIL": f"{author.split()[0].lower()}@example.com",
        "GIT_COMMITTER_NAME": author,
        "GIT_COMMITTER_EMAIL": f"{author.split()[0].lower()}@example.com",
        "GIT_AUTHOR_DATE": when,
        "GIT_COMMITTER_DATE": when,
    }
    done = subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def pin_version(root: Path, version: str) -> None:
    """Write prod's pin naming `version` (the fields the strict reader checks stay as rendered)."""
    text = (PROJECT_ROOT / PROD).read_text(encoding="utf-8")
    assert UNPINNED in text
    (root / PROD).write_text(text.replace(UNPINNED, f'version: "{version}"'), encoding="utf-8")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A project whose prod pin changed three times, each change landed as a PR, and one unreadable hand edit.

    Returns the commit of each event by name.
    """
    root = tmp_path / "project"
    root.mkdir()
    for name in ("params.yaml", ".copier-answers.yml"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    shutil.copytree(PROJECT_ROOT / "deploy", root / "deploy")
    monkeypatch.chdir(root)
    git(root, "init", "--quiet", "--initial-branch=main")
    git(root, "add", ".")
    commits = {}
    git(root, "commit", "--quiet", "-m", "Start the project")
    commits["start"] = git(root, "rev-parse", "HEAD")
    # 1: a squash merge.
    pin_version(root, "1")
    git(root, "commit", "--quiet", "-am", "Promote prod to version 1 (#7)", when="2026-01-10T12:00:00+00:00")
    commits["v1"] = git(root, "rev-parse", "HEAD")
    # 2: a merge commit; the branch's own commit is not on main's first-parent line.
    git(root, "checkout", "--quiet", "-b", "promote-prod-2")
    pin_version(root, "2")
    git(root, "commit", "--quiet", "-am", "Pin prod to 2", when="2026-02-05T08:00:00+00:00", author="Bo Builder")
    commits["side"] = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "--quiet", "main")
    git(
        root, "merge", "--quiet", "--no-ff", "-m", "Merge pull request #12 from team/promote-prod-2", "promote-prod-2",
        when="2026-02-10T12:00:00+00:00", author="Cy Reviewer",
    )  # fmt: skip
    commits["v2"] = git(root, "rev-parse", "HEAD")
    # A hand edit the strict reader refuses (kustomize and PyYAML would read two different versions).
    text = (root / PROD).read_text(encoding="utf-8")
    (root / PROD).write_text(text.replace('version: "2"', 'version: "2"\n  version: "9"'), encoding="utf-8")
    git(root, "commit", "--quiet", "-am", "Hand edit", when="2026-03-01T12:00:00+00:00")
    commits["broken"] = git(root, "rev-parse", "HEAD")
    pin_version(root, "3")
    git(root, "commit", "--quiet", "-am", "Promote prod to version 3 (#15)", when="2026-03-10T12:00:00+00:00")
    commits["v3"] = git(root, "rev-parse", "HEAD")
    return commits


def history(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["history", "--params", "params.yaml", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def registry(aliases: dict[str, str]) -> None:
    """The real SQLite registry of this test (conftest) with versions 1-3 and the given champion-<env> aliases."""
    uri = os.environ["MLFLOW_TRACKING_URI"]  # this test's store, not the last one a command connected to
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL)
    for _ in range(3):
        client.create_model_version(MODEL, source=Path("model").resolve().as_uri())
    for env, version in aliases.items():
        client.set_registered_model_alias(MODEL, f"champion-{env}", version)


def test_each_change_oldest_first_with_its_pull_request(repo: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """JSON lists prod's changes in the order they landed: version, commit, date, author, PR number."""
    code, out, _ = history(capsys, "--env", "prod", "--json")

    assert code == 0
    prod = json.loads(out)["environments"]["prod"]
    changes = prod["changes"]
    assert [c["version"] for c in changes] == [None, "1", "2", "3"]
    assert [c["commit"] for c in changes] == [repo["start"], repo["v1"], repo["v2"], repo["v3"]]
    assert [c["pr"] for c in changes] == [None, 7, 12, 15]
    assert changes[2]["author"] == "Cy Reviewer" and changes[2]["email"] == "cy@example.com"
    assert changes[2]["date"] == "2026-02-10T12:00:00+00:00"
    assert {c["model"] for c in changes} == {MODEL}
    assert repo["side"] not in out  # only what landed on the branch


@pytest.mark.parametrize(
    ("at", "version"),
    [
        ("2026-01-01T08:59:59Z", "absent"),
        ("2026-01-05", None),
        ("2026-01-10T12:00:00+00:00", "1"),
        ("2026-02-10T11:59:59", "1"),  # the branch's own commit (02-05) had not landed
        ("2026-02-10T14:00:00+02:00", "2"),
        ("2026-03-05", "2"),  # the unreadable edit of 03-01 is skipped
        ("2026-04-01", "3"),
    ],
)
def test_at_answers_what_served_then(
    repo: dict, capsys: pytest.CaptureFixture[str], at: str, version: str | None
) -> None:
    """--at DATE names the version pinned at that moment (UTC unless an offset is given)."""
    code, out, _ = history(capsys, "--env", "prod", "--at", at, "--json")

    assert code == 0
    served = json.loads(out)["environments"]["prod"]["at"]
    assert (served["version"] if served else "absent") == version


def test_at_in_the_table(repo: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """The table ends with what each environment served at --at, with its commit and PR."""
    code, out, _ = history(capsys, "--at", "2026-02-20")

    assert code == 0
    assert f"prod: version 2 (since 2026-02-10T12:00:00+00:00, commit {repo['v2'][:12]}, PR #12)" in out
    assert "dev: version none" in out


def test_json_shape(repo: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """The JSON keys are the documented ones, for every environment."""
    code, out, _ = history(capsys, "--json", "--at", "2026-03-05")

    assert code == 0
    data = json.loads(out)
    assert set(data) == {"at", "environments", "registry_error"}
    assert data["at"] == "2026-03-05T00:00:00+00:00"
    assert list(data["environments"]) == ["dev", "staging", "prod"]
    for entry in data["environments"].values():
        assert set(entry) == {"pin", "changes", "unreadable", "registry", "at"}
        for change in entry["changes"]:
            assert set(change) == {"commit", "date", "author", "email", "subject", "pr", "model", "version"}
    assert data["registry_error"] is not None  # no registry in this project yet: noted, not fatal
    assert not Path(os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")).exists()  # reading made none


def test_unreadable_pin_is_named_and_skipped(repo: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """A commit whose pin the strict reader refuses is reported with its commit and why, and left out."""
    code, out, _ = history(capsys, "--env", "prod")

    assert code == 0
    assert f"skipped {repo['broken'][:12]}" in out and "duplicate key 'version'" in out
    code, out, _ = history(capsys, "--env", "prod", "--json")
    unreadable = json.loads(out)["environments"]["prod"]["unreadable"]
    assert [u["commit"] for u in unreadable] == [repo["broken"]]


def test_disagreeing_alias_fails_check_registry(repo: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """champion-prod on version 2 while the pin names 3: reported, and --check-registry exits 16 with the fix."""
    registry({"prod": "2"})

    code, out, _ = history(capsys, "--env", "prod")
    assert code == 0
    assert "registry: champion-prod is on version 2, DISAGREES: the pin names 3" in out

    code, _, err = history(capsys, "--env", "prod", "--check-registry")
    assert code == 16
    assert "prod: the pin (deploy/overlays/prod/model.yaml) names version 3" in err
    assert "champion-prod is on version 2" in err
    assert "make promote-sync" in err


def test_agreeing_registry_passes_check_registry(repo: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """Aliases on the pinned versions (and none where nothing is pinned) pass --check-registry."""
    registry({"prod": "3"})

    code, out, _ = history(capsys, "--check-registry", "--json")

    assert code == 0
    entries = json.loads(out)["environments"]
    assert entries["prod"]["registry"] == {
        "alias": "champion-prod", "alias_version": "3", "pin_version": "3", "agrees": True
    }  # fmt: skip
    assert entries["dev"]["registry"]["agrees"] and entries["dev"]["registry"]["alias_version"] is None


def test_check_registry_without_a_registry(repo: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """--check-registry with no registry to read fails (exit 5) naming where it looked, and creates no store."""
    code, _, err = history(capsys, "--check-registry")

    assert code == 5
    assert "no MLflow registry at sqlite:///" in err and "MLFLOW_TRACKING_URI" in err
    assert not Path(os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")).exists()


def test_no_history_of_the_pin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A repository where the pins were never committed gets a clear message (exit 2), as does no repository."""
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    code, _, err = history(capsys)
    assert code == 2 and "run history in a git clone of the project" in err

    git(tmp_path, "init", "--quiet", "--initial-branch=main")
    git(tmp_path, "add", "params.yaml")
    git(tmp_path, "commit", "--quiet", "-m", "Start")
    code, _, err = history(capsys, "--env", "prod")
    assert code == 2
    assert "no commit on this branch changes deploy/overlays/prod/model.yaml" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "last tuesday"], "--at 'last tuesday' is not an ISO date or datetime"),
        (["--env", "qa"], "--env 'qa' is not an environment"),
    ],
)
def test_bad_arguments(repo: dict, capsys: pytest.CaptureFixture[str], args: list, message: str) -> None:
    """A date or environment that cannot be read is named, with the fix (exit 2)."""
    code, _, err = history(capsys, *args)

    assert code == 2 and message in err


@pytest.mark.parametrize(
    ("subject", "number"),
    [
        ("Merge pull request #12 from team/promote-prod-2", 12),
        ("Promote prod to version 3 (#15)", 15),
        ("Promote prod (#15) again", None),
        ("Fix #4: hand edit", None),
    ],
)
def test_pull_request_number_from_the_subject(subject: str, number: int | None) -> None:
    """GitHub's merge and squash subjects name the pull request; other mentions do not."""
    assert pr_number(subject) == number
