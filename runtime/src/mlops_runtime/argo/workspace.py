"""A task's workspace for `pipeline run-local`: the image's files, and every path kept inside it.

A pod's working directory is the task's workspace: the files .dockerignore lets into the image,
then its input artifacts. The paths a workflow declares (artifacts, output parameters) are mapped
into that workspace and refused when they would leave it, whether by `..` or through a symbolic
link: run-local writes, reads and removes only inside its workdir.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from ..errors import ParamsError

IMAGE_FILTER = ".dockerignore"
LOGS = "logs"  # the workdir's folder of task logs, beside one workspace per task
READ_LIMIT = 1024 * 1024  # bytes of a task's stdout (its `result`), log tail or output parameter read into memory
# Argo's rule for a DAG task's name; run-local also makes it a folder and file name.
TASK_NAME = re.compile(r"[a-zA-Z0-9][-a-zA-Z0-9]{0,126}")


def check_task_name(name: object) -> str:
    """A task's name, refused unless it is a slug (it names the task's workspace and log files)."""
    if not isinstance(name, str) or not TASK_NAME.fullmatch(name) or name == LOGS:
        raise ParamsError(
            f"task name {name!r}: a task's name is letters, digits and '-', starting with a letter or digit "
            f"(at most 127), and not {LOGS!r}; run-local names the task's workspace and logs after it: rename the task"
        )
    return name


def confined(path: Path, base: Path, what: str, declared: str) -> Path:
    """`path` with `..` and symbolic links resolved; ParamsError unless it is `base` or inside it."""
    try:
        resolved, inside = path.resolve(), base.resolve()
    except (OSError, RuntimeError) as exc:  # a loop of symbolic links
        raise ParamsError(f"{what}: {declared} cannot be resolved: {exc}") from None
    if resolved != inside and not resolved.is_relative_to(inside):
        raise ParamsError(
            f"{what}: {declared} resolves to {resolved}, outside {inside} (a `..` or a symbolic link leads out); "
            "run-local reads and writes only inside the task's workspace: give a path inside the working directory"
        )
    return resolved


# --- the image: which project files a pod finds in its working directory ---------------------------


def _pattern(text: str) -> re.Pattern[str]:
    """One .dockerignore pattern (Go filepath.Match with `**`) as a regular expression."""
    out, i = "", 0
    while i < len(text):
        if text.startswith("**", i):
            out, i = out + ".*", i + 2
            if text.startswith("/", i):
                out, i = out + "/?", i + 1
        elif text[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif text[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(text[i]), i + 1
    return re.compile(out)


def image_rules(root: Path) -> list[tuple[bool, str, re.Pattern[str]]]:
    """(include, pattern, regex) for each line of .dockerignore, in order (the last match decides)."""
    path = root / IMAGE_FILTER
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ParamsError(
            f"{path} not found: run-local lays each task out as the image is built, from it; restore it from git"
        ) from None
    rules = []
    for line in (line.strip() for line in lines):
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).strip("/")
        rules.append((include, pattern, _pattern(pattern)))
    return rules


def _excluded(relative: str, rules: list[tuple[bool, str, re.Pattern[str]]]) -> bool:
    """Docker's rule: a pattern matches a path or any folder above it; the last matching line wins."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for include, _, regex in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not include
    return excluded


def image_files(root: Path) -> list[str]:
    """The project files the image build copies (relative paths), as .dockerignore lets them through."""
    rules = image_rules(root)
    # Folders that an `!` line may reach into must be walked even when excluded.
    reachable = [re.split(r"[*?\[]", pattern)[0] for include, pattern, _ in rules if include]
    files = []
    for folder, subfolders, names in os.walk(root):
        here = os.path.relpath(folder, root)
        here = "" if here == "." else here + "/"
        subfolders[:] = [
            name
            for name in subfolders
            if not _excluded(here + name, rules)
            or any(prefix.startswith(here + name + "/") or not prefix for prefix in reachable)
        ]
        files += [here + name for name in names if not _excluded(here + name, rules)]
    return sorted(files)


def lay_out_image(root: Path, files: Sequence[str], workspace: Path) -> None:
    """A pod's working directory: the image's files, and DVC told there is no git (the Dockerfile does the same).

    A symbolic link is copied as a link, as `COPY` does: its target is never read."""
    for relative in files:
        target = workspace / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target, follow_symlinks=False)
    if (workspace / ".dvc").is_dir() and not (workspace / ".dvc").is_symlink():
        (workspace / ".dvc" / "config.local").write_text("[core]\n    no_scm = true\n", encoding="utf-8")


# --- where a container's paths land ----------------------------------------------------------------


class Pod:
    """Where one task's container paths land: its working directory is the task's workspace."""

    def __init__(self, workspace: Path, working_dir: str) -> None:
        self.workspace = workspace
        self.working_dir = working_dir.rstrip("/") or "/"

    def relative(self, declared: str, what: str) -> str:
        """`declared` relative to the working directory (`.` for itself); ParamsError if `..` leads out of it."""
        if declared.startswith("/"):
            relative = os.path.relpath(declared, self.working_dir)
        else:
            relative = os.path.normpath(declared)
        if relative == ".." or relative.startswith("../"):
            raise ParamsError(
                f"{what}: {declared} is outside the working directory {self.working_dir}; "
                "run-local maps only that: give a path inside it"
            )
        return relative

    def path(self, declared: str, what: str) -> Path:
        """The workspace path of a declared container path, symbolic links resolved; refused if it leaves it."""
        relative = self.relative(declared, what)
        return confined(self.workspace / relative, self.workspace, what, declared)

    def argument(self, text: str) -> str:
        """An argument naming a path in the working directory points into the workspace instead."""
        if text == self.working_dir or text.startswith(self.working_dir + "/"):
            relative = self.relative(text, "argument")
            return str(self.workspace if relative == "." else self.workspace / relative)
        return text


def copy_artifact(source: Path, target: Path, folder: Path, what: str) -> None:
    """An upstream task's output into a workspace; links inside it are copied as links, never followed.

    `source` is checked again: a later task may have swapped it for a link since it was collected."""
    source = confined(source, folder, what, str(source))
    try:
        if target.is_dir():
            shutil.rmtree(target)
        elif target.is_file():
            target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target, follow_symlinks=False)
    except (OSError, shutil.Error) as exc:  # a named pipe or socket is refused, not read
        raise ParamsError(f"{what}: cannot copy {source} to {target}: {exc}") from None


def log_end(handle: IO[bytes]) -> str:
    """The last READ_LIMIT bytes written to an open log (read through the handle, whatever became of its path)."""
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - READ_LIMIT))
    return handle.read().decode("utf-8", errors="replace")


def read_value(path: Path, what: str) -> str:
    """A file a task wrote as a parameter's value; ParamsError naming it when over READ_LIMIT bytes."""
    with path.open("rb") as handle:
        value = handle.read(READ_LIMIT + 1)
    if len(value) > READ_LIMIT:
        raise ParamsError(
            f"{what}: {path} holds over {READ_LIMIT} bytes; a parameter is a short value: use an artifact"
        )
    return value.decode("utf-8", errors="replace")
