"""Update migration to 0.4.0: the platform leaves the project for the runtime package (mlops-runtime).

From 0.4.0 a project's package keeps its own code (stages/, hooks, the entry point); the server, monitoring,
release, Argo, registry and the command line are `mlops_runtime`, installed at one exact version from the
template's repository (pyproject.toml, uv.lock). `copier update` deletes the platform modules the project
had; copier runs this afterwards, while HEAD still holds the project as it was before the update:

- A platform module the project edited (it differs from the module of the release the project came from, read
  from the template repository at the `_commit` of .copier-answers.yml in HEAD) is kept beside the project's
  code as `<module>.py.orig`, with what replaces an edit there: a serving, promotion or monitoring hook
  (docs/hooks.md), or a change proposed to the runtime. `make lint` fails while such a file is there.
- Imports of platform modules in the project's own Python files under src/, tests/, pipelines/ and bench/
  (`from <package>.config import ...`, `from ..config import ...` in the package, `<package>.serving...` in
  strings such as patch targets) are rewritten to `mlops_runtime`.

Everything done and left to do is printed. Safe to rerun: a project whose HEAD is at 0.4.0 or later is not
touched. Exits non-zero only when the old release cannot be read, naming the edited modules still in HEAD.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from packaging.version import InvalidVersion, Version

ANSWERS = ".copier-answers.yml"
VERSION = Version("0.4.0")
RUNTIME = "mlops_runtime"
OLD_PACKAGE = "template/src/{{package_name}}"
# What stays the project's in its package: its ML code, its hooks and its entry point.
OWN = ("stages/", "hooks.py", "__init__.py", "__main__.py")
SCANNED = ("src", "tests", "pipelines", "bench")
# The hook that replaces an edit of each part of the platform (docs/hooks.md).
HOOKS = {
    "serving": "a serving hook (hooks.serving in params.yaml: before_predict, after_predict)",
    "release": "a promotion hook (hooks.promotion in params.yaml: a gate of the project's own)",
    "monitoring": "a monitoring hook (hooks.monitoring in params.yaml: a check of the project's own)",
}
# Modules of releases before 0.3.0, split since into those parts.
HOOKS |= {"serve": HOOKS["serving"], "promote": HOOKS["release"], "monitor": HOOKS["monitoring"]}
OTHER = "no hook: propose the change to the runtime, or keep the code in a module of the project's own"


class CannotMigrate(Exception):
    pass


@dataclass
class Report:
    kept: list[str] = field(default_factory=list)
    rewrote: list[str] = field(default_factory=list)

    def print(self) -> None:
        if not (self.kept or self.rewrote):
            return
        print(f"migration to {VERSION} (runtime package): the platform is now {RUNTIME} (docs/runtime.md)")
        for line in self.rewrote:
            print(f"  rewrote imports: {line}")
        for line in self.kept:
            print(f"  TO DO: {line}")


def git(*args: str, cwd: Path | str = ".") -> bytes:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True)
    if done.returncode:
        raise subprocess.CalledProcessError(done.returncode, ["git", *args], done.stdout, done.stderr)
    return done.stdout


def old_release(project: Path) -> tuple[str, str] | None:
    """(the release commit the project came from, its package name), or None when HEAD is already thin."""
    try:
        answers = yaml.safe_load(git("show", f"HEAD:{ANSWERS}", cwd=project)) or {}
    except subprocess.CalledProcessError:
        return None
    commit = str(answers.get("_commit", ""))
    try:
        if Version(commit.lstrip("v").split("-")[0]) >= VERSION:
            return None
    except InvalidVersion:
        pass
    return commit, str(answers["package_name"])


def runtime_modules(template: Path) -> set[str]:
    """Top-level names of the runtime package (config, serving, release, ...)."""
    source = template / "runtime" / "src" / RUNTIME
    return {p.stem if p.is_file() else p.name for p in source.iterdir() if p.name != "__init__.py"} - {"__pycache__"}


def keep_edited(project: Path, template: Path, commit: str, package: str, report: Report) -> None:
    listed = git("ls-tree", "-r", "--name-only", "HEAD", f"src/{package}/", cwd=project).decode().split()
    for path in listed:
        relative = path.removeprefix(f"src/{package}/")
        if not relative.endswith(".py") or relative.startswith(OWN):
            continue
        try:
            released = git("show", f"{commit}:{OLD_PACKAGE}/{relative}", cwd=template)
        except subprocess.CalledProcessError:
            continue  # the project's own module: copier never rendered it and leaves it
        ours = git("show", f"HEAD:{path}", cwd=project)
        if ours == released:
            continue
        orig = project / f"{path}.orig"
        orig.parent.mkdir(parents=True, exist_ok=True)
        orig.write_bytes(ours)
        part = relative.split("/")[0].removesuffix(".py")
        report.kept.append(
            f"{path}.orig: the project's edit of {relative}, now {RUNTIME}.{relative[:-3].replace('/', '.')}; "
            f"carry it over with {HOOKS.get(part, OTHER)}, then delete the file"
        )


def rewrite_imports(project: Path, package: str, modules: set[str], report: Report) -> None:
    names = "|".join(sorted(map(re.escape, modules)))
    absolute = re.compile(rf"\b{re.escape(package)}\.({names})\b")
    listed = rf"(?:{names})(?: as \w+)?(?:\s*,\s*(?:{names})(?: as \w+)?)*"
    together = re.compile(rf"^(\s*)from {re.escape(package)} import ({listed})\s*$", re.M)
    for top in SCANNED:
        for path in sorted((project / top).rglob("*.py")) if (project / top).is_dir() else []:
            relative = path.relative_to(project)
            text = path.read_text(encoding="utf-8")
            new = together.sub(rf"\1from {RUNTIME} import \2", absolute.sub(rf"{RUNTIME}.\1", text))
            parts = relative.parts
            if parts[:2] == ("src", package):
                depth = len(parts) - 2  # dots that name the package root from this module
                new = re.sub(rf"^(\s*)from \.{{{depth}}}({names})\b", rf"\1from {RUNTIME}.\2", new, flags=re.M)
                new = re.sub(
                    rf"^(\s*)from \.{{{depth}}} import ({listed})\s*$",
                    rf"\1from {RUNTIME} import \2", new, flags=re.M,
                )  # fmt: skip
            if new != text:
                path.write_text(new, encoding="utf-8")
                report.rewrote.append(relative.as_posix())


def migrate(project: Path, template: Path) -> Report:
    report = Report()
    found = old_release(project)
    if found is None:
        return report
    commit, package = found
    try:
        git("cat-file", "-e", f"{commit}^{{commit}}", cwd=template)
    except subprocess.CalledProcessError:
        raise CannotMigrate(
            f"the release the project came from ({commit}) is not in the template repository {template}, so the "
            f"project's edits of platform modules cannot be told apart: they are in HEAD under src/{package}/"
        ) from None
    keep_edited(project, template, commit, package, report)
    rewrite_imports(project, package, runtime_modules(template), report)
    return report


def main(argv: list[str]) -> int:
    # The template checkout copier renders from (`_copier_conf.src_path`); run by hand, this file's repository.
    template = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1]
    try:
        report = migrate(Path.cwd(), template)
    except CannotMigrate as exc:
        print(f"migration to {VERSION} (runtime package): {exc}", file=sys.stderr)
        return 1
    report.print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
