"""Template releases read from the repository's own history, and a tagged throwaway clone to update between them.

A fresh clone may carry no tags, so a release's commit is the one that added its
`## [X.Y.Z] - date` heading to CHANGELOG.md; the clone gets the tags, never the
repository under test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\] - \d{4}-\d{2}-\d{2}$", re.MULTILINE)


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {done.stderr.strip()}")
    return done.stdout


def changelog_releases(text: str | None = None) -> list[Version]:
    """Released versions, in the order CHANGELOG.md lists them (newest first)."""
    text = (REPO_ROOT / "CHANGELOG.md").read_text(encoding="utf-8") if text is None else text
    return [Version(match["version"]) for match in HEADING.finditer(text)]


def release_commit(version: Version) -> str:
    """The commit that added the release's CHANGELOG heading: the template as released."""
    # The heading without its date, so that a later fix of the date does not move the release.
    heading = f"## [{version}]"
    found = _git(REPO_ROOT, "log", "--format=%H", "--reverse", "-S", heading, "--", "CHANGELOG.md").split()
    if not found:
        raise LookupError(
            f"no commit in this clone's history adds the CHANGELOG heading {heading!r}; "
            "a shallow clone lacks it: fetch the whole history (git fetch --unshallow)"
        )
    return found[0]


def migration_versions() -> list[Version]:
    """Versions that `_migrations` in copier.yml apply at."""
    config = yaml.safe_load((REPO_ROOT / "copier.yml").read_text(encoding="utf-8"))
    return [Version(str(m["version"])) for m in config.get("_migrations", []) if isinstance(m, dict) and "version" in m]


def working_tree_version() -> Version:
    """The working tree's version: the latest release if it is exactly that commit, else the release in the making.

    The release in the making is the newest migration's version when that is not
    released yet, otherwise a post-release of the latest release.
    """
    latest = max(changelog_releases())
    upcoming = max(migration_versions(), default=latest)
    if upcoming > latest:
        return upcoming
    at_release = _git(REPO_ROOT, "rev-parse", "HEAD").strip() == release_commit(latest)
    clean = not _git(REPO_ROOT, "status", "--porcelain").strip()
    return latest if at_release and clean else Version(f"{latest}.post1")


@dataclass(frozen=True)
class TemplateClone:
    """A git clone of the template with every release tagged and the working tree as the newest tag."""

    path: Path
    releases: list[Version]  # oldest first
    newest: str  # the tag of the working tree

    def tag(self, version: Version) -> str:
        return f"v{version}"


def make_template_clone(dst: Path) -> TemplateClone:
    """Clone the repository into `dst`, tag each release at its commit, commit the working tree on top and tag it."""
    _git(dst.parent, "clone", "--quiet", "--no-checkout", str(REPO_ROOT), str(dst))
    for tag in _git(dst, "tag", "--list").split():
        _git(dst, "tag", "--delete", tag)
    _git(dst, "checkout", "--quiet", "--detach", _git(REPO_ROOT, "rev-parse", "HEAD").strip())

    # The working tree as it is, uncommitted and untracked files included (ignored ones aside).
    for path in _git(dst, "ls-files", "-z").split("\0"):
        if path:
            (dst / path).unlink(missing_ok=True)
    for path in _git(REPO_ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0"):
        if path and (REPO_ROOT / path).is_file():
            (dst / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / path, dst / path)
    _git(dst, "add", "--all")
    if _git(dst, "status", "--porcelain").strip():
        _git(
            dst,
            "-c",
            "user.name=Template Tests",
            "-c",
            "user.email=tests@example.com",
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            "Working tree",
        )

    releases = sorted(changelog_releases())
    commits = {version: release_commit(version) for version in releases}
    for version, commit in commits.items():
        _git(dst, "tag", f"v{version}", commit)
    newest = working_tree_version()
    if newest not in commits:
        _git(dst, "tag", f"v{newest}", "HEAD")
    return TemplateClone(dst, releases, f"v{newest}")
