"""Renovate's copier manager can follow generated projects: `_src_path` is a URL it accepts, and its update works.

Renovate reads `_src_path` and `_commit` from `.copier-answers.yml`, looks the
template's tags up with `git ls-remote _src_path`, and runs `copier update` itself.
Its schema takes a URL or `git@host:path`; a `gh:OWNER/REPO` shorthand reaches
git as it is and fails, and a local path is refused. GitHub and GitLab are not
reached here: for one command, git fetches the shorthand's URL from a local clone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.version import Version

from .conftest import REPO_ROOT, run
from .releases import TemplateClone

ANSWERS = ".copier-answers.yml"
GH = "gh:OWNER/REPO"
GH_URL = "https://github.com/OWNER/REPO.git"
SCP_LIKE = re.compile(r"git@[^:]*:.+")  # Renovate's pattern for an SSH source
NETWORK_SCHEMES = {"https", "http", "ssh", "git", "git+ssh"}
# Commands in the docs that name the template by a shorthand (cookiecutter's and copier's).
SHORTHAND_COMMAND = re.compile(r"\b(copier (copy|update|recopy)|cookiecutter)\b[^\n`]*\s(gh|gl):")


def renovate_accepts(src: str) -> bool:
    """A source Renovate's copier manager can look up: `git@host:path`, or a URL with a host that git fetches."""
    if SCP_LIKE.fullmatch(src):
        return True
    parts = urlsplit(src)
    return parts.scheme in NETWORK_SCHEMES and bool(parts.hostname)


def fetched_from(clone: Path, url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for one command: git fetches whatever starts with `url` from `clone`.

    Copier keeps mirrors of remote templates by URL; a cache of the test's own
    keeps other runs' mirrors of the same URL out.
    """
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{clone}.insteadOf",
        "GIT_CONFIG_VALUE_0": url,
        "COPIER_CACHE_DIR": str(tmp_path / "copier-cache"),
    }


def copy(source: str, project: Path, *options: str, env: dict[str, str], ref: str = "HEAD") -> None:
    """`copier copy` as people run it, with default answers and a DVC remote beside the project."""
    run(
        ["copier", "copy", "--trust", "--defaults", "--vcs-ref", ref, *options, source, str(project)]
        + ["--data", f"dvc_remote_url={project.parent / 'remote'}"],
        cwd=project.parent,
        env=env,
    )


def recorded(project: Path) -> dict:
    return yaml.safe_load((project / ANSWERS).read_text(encoding="utf-8"))


@pytest.fixture
def template_repo(template_clone: TemplateClone, tmp_path: Path) -> Path:
    """A clone of the tagged template that a test may add releases to."""
    run(["git", "clone", "--quiet", str(template_clone.path), str(tmp_path / "template")], cwd=tmp_path)
    return tmp_path / "template"


def test_the_shorthand_check_is_the_one_renovate_fails() -> None:
    """The URL check refuses what Renovate cannot follow and takes what it can."""
    assert not renovate_accepts(GH)
    assert not renovate_accepts("gl:OWNER/REPO")
    assert not renovate_accepts("/srv/templates/mlops")
    assert renovate_accepts(GH_URL)
    assert renovate_accepts("git@github.com:OWNER/REPO.git")


@pytest.mark.parametrize(
    ("source", "fetched", "expected"),
    [
        (GH, GH_URL, GH_URL),
        ("gh:OWNER/REPO.git", GH_URL, GH_URL),
        ("gh:/OWNER/REPO", GH_URL, GH_URL),
        ("gl:OWNER/REPO", "https://gitlab.com/OWNER/REPO.git", "https://gitlab.com/OWNER/REPO.git"),
        ("gl:group/sub/REPO", "https://gitlab.com/group/sub/REPO.git", "https://gitlab.com/group/sub/REPO.git"),
        (GH_URL, GH_URL, GH_URL),
        ("https://git.example.com/team/template.git", "https://git.example.com/team/template.git", None),
        ("git@github.com:OWNER/REPO.git", "git@github.com:OWNER/REPO.git", None),
    ],
    ids=["gh", "gh-dot-git", "gh-slash", "gl", "gl-subgroup", "https", "https-other-host", "scp-like"],
)
def test_recorded_source_is_a_url(
    source: str,
    fetched: str,
    expected: str | None,
    template_clone: TemplateClone,
    tmp_path: Path,
) -> None:
    """gh:/gl: shorthands are recorded as the https URL copier clones; URLs stay as given."""
    copy(source, tmp_path / "project", "--skip-tasks", env=fetched_from(template_clone.path, fetched, tmp_path))
    src = recorded(tmp_path / "project")["_src_path"]
    assert src == (expected or source)
    assert renovate_accepts(src), src


def test_local_source_stays_a_path(template_clone: TemplateClone, tmp_path: Path) -> None:
    """A local template is recorded as its path (Renovate cannot follow it; `copier update` can)."""
    copy(str(template_clone.path), tmp_path / "project", "--skip-tasks", env={})
    assert recorded(tmp_path / "project")["_src_path"] == str(template_clone.path)


def next_release(template: Path) -> str:
    """Commit a new template file on top of the newest tag and tag it as the next patch release."""
    newest = max(Version(tag.removeprefix("v")) for tag in run(["git", "tag", "--list", "v*"], cwd=template).split())
    tag = f"v{newest.major}.{newest.minor}.{newest.micro + 1}"
    (template / "template" / "NEXT_RELEASE.md").write_text("Arrives with the next release.\n", encoding="utf-8")
    run(["git", "add", "template/NEXT_RELEASE.md"], cwd=template)
    run(["git", "commit", "--quiet", "--no-verify", "-m", "Next release"], cwd=template)
    run(["git", "tag", tag], cwd=template)
    return tag


def test_renovate_updates_a_project_made_from_gh(template_repo: Path, tmp_path: Path) -> None:
    """`copier copy gh:OWNER/REPO` records the URL; the update Renovate runs from that URL brings the next release."""
    env = fetched_from(template_repo, GH_URL, tmp_path)
    project = tmp_path / "project"
    copy(GH, project, env=env)
    answers = recorded(project)
    assert answers["_src_path"] == GH_URL
    assert renovate_accepts(answers["_src_path"])

    tag = next_release(template_repo)
    # Renovate's lookup: the tags at the recorded URL, as `git ls-remote` lists them.
    assert f"refs/tags/{tag}" in run(["git", "ls-remote", "--tags", answers["_src_path"]], cwd=tmp_path, env=env)
    # The command Renovate's copier manager runs (with `--trust` when scripts are allowed).
    run(
        ["copier", "update", "--skip-answered", "--defaults", "--trust"]
        + ["--answers-file", ANSWERS, "--vcs-ref", tag],
        cwd=project,
        env=env,
    )
    assert (project / "NEXT_RELEASE.md").is_file()
    assert recorded(project)["_commit"] == tag
    assert recorded(project)["_src_path"] == GH_URL


def test_shorthand_recorded_by_an_older_release_becomes_the_url(template_clone: TemplateClone, tmp_path: Path) -> None:
    """A project whose answers hold `gh:` (as older releases recorded it) gets the URL on its next update."""
    env = fetched_from(template_clone.path, GH_URL, tmp_path)
    project = tmp_path / "project"
    copy(GH, project, env=env, ref=template_clone.tag(template_clone.releases[0]))
    run(["copier", "update", "--trust", "--defaults", "--vcs-ref", template_clone.newest], cwd=project, env=env)
    assert recorded(project)["_src_path"] == GH_URL
    assert recorded(project)["_commit"] == template_clone.newest


def renovate_config() -> dict:
    """The `renovate.json` that docs/updates.md gives: the JSON block right after its first mention."""
    text = (REPO_ROOT / "docs" / "updates.md").read_text(encoding="utf-8")
    found = re.search(r"`renovate\.json`.*?```json\n(.*?)```", text, re.DOTALL)
    assert found, "docs/updates.md gives no renovate.json in a ```json block"
    return json.loads(found[1])


def test_docs_give_a_renovate_config_for_the_copier_manager() -> None:
    config = renovate_config()
    assert "copier" in config["enabledManagers"]
    # Copier refuses this template (tasks, migrations) without --trust, which Renovate adds only with scripts on.
    assert config["ignoreScripts"] is False


def test_docs_name_the_template_by_url() -> None:
    """Commands in the docs give the https URL, which is what the project then records."""
    for path in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        assert not SHORTHAND_COMMAND.search(text), f"{path.name}: {SHORTHAND_COMMAND.search(text)[0]}"
