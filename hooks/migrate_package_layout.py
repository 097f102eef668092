"""Update migration to 0.3.0: the project's edits of moved modules follow them to their new place in the package.

0.3.0 groups the package by lifecycle role (stages/, monitoring/, release/, argo/,
serving/, registry.py; the benchmarks at the project's bench/). `copier update`
carries a project's edit over by applying it to the file at the same path; a
module that moved has no file there any more, so copier drops the edit and then
deletes the old file with the rest of the old release. Copier runs this
afterwards, while HEAD still holds the project as it was before the update:

- A moved module the project edited is merged three ways into its new file: the
  project's version (HEAD) and the new module, with the module of the release the
  project came from as the common base. The template copies these modules as they
  are, so the base is read from the template repository at that release (the
  `_commit` of .copier-answers.yml in HEAD) and rendered with the project's
  answers. Relative imports of both sides are first written as the new location
  needs them, so only the project's own changes remain to merge. Conflicts stay as
  inline markers and are recorded as unmerged, as copier records its own.
- A module that was split (monitor.py, promote.py, argo.py, serve.py) is merged one
  top-level definition at a time: each function, class or constant the project
  changed goes into the new module that defines it now, definitions the project
  added go with them, and imports the project added go where they are used. When
  not every edit has one such place (a definition removed, found in no new module
  or in several, module-level code or comments changed), nothing of that module is
  merged: the project's file is left beside the new ones as `<old name>.py.orig`
  to carry over by hand; `make lint` fails while it is there.
- Imports of moved modules in the project's Python files under src/, tests/ and
  pipelines/ (`from <package>.featurize import ...`, `from .featurize import ...`,
  `import <package>.serve` with its uses, dotted names in strings such as patch
  targets) are rewritten to the new modules; lines the new release itself has are
  left as they are. What cannot be rewritten is named.

Everything done and everything left to do is printed. Safe to rerun: a new module
that no longer matches the release is left alone (silently when it already holds
this merge), and a project whose HEAD has none of the old modules (one generated
from 0.3.0, or an update already committed) is not touched. Exits non-zero only
when the old release cannot be read, naming where the project's edits still are.
"""

from __future__ import annotations

import ast
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ANSWERS = ".copier-answers.yml"
VERSION = "0.3.0"
# Old module of the package -> its new module, for modules that moved whole.
MOVED = {
    "ingest": "stages.ingest",
    "validate": "stages.validate",
    "featurize": "stages.featurize",
    "train": "stages.train",
    "evaluate": "stages.evaluate",
    "register": "stages.register",
    "summary": "stages.summary",
    "pin": "release.pin",
    "manifests": "release.manifests",
    "schemas": "release.schemas",
    "stage_graph": "argo.dag",
    "tracking": "registry",
}
# Old module -> the subpackage its definitions were spread over.
SPLIT = {"monitor": "monitoring", "promote": "release", "argo": "argo", "serve": "serving"}
# Old modules that became scripts at the project root: they cannot be imported any more.
SCRIPTS = {"bench_serving": "bench/serving.py", "bench_monitoring": "bench/monitoring.py"}
# Where the project keeps Python code of its own.
SCANNED = ("src", "tests", "pipelines")
LINE_LENGTH = 120  # the project's ruff line length
MARKER = re.compile(rb"^(<<<<<<<|>>>>>>>) ", re.MULTILINE)


class CannotMigrate(Exception):
    """The old release cannot be read; the message says where the project's edits are."""


def git(*args: str, cwd: Path | str = ".", data: bytes | None = None) -> bytes:
    done = subprocess.run(["git", *args], cwd=cwd, input=data, capture_output=True)
    if done.returncode:
        raise subprocess.CalledProcessError(done.returncode, ["git", *args], done.stdout, done.stderr)
    return done.stdout


def head_file(path: str) -> bytes | None:
    """The file as the project committed it before the update, or None."""
    try:
        return git("show", f"HEAD:{path}")
    except subprocess.CalledProcessError:
        return None


# Rendering a release ---------------------------------------------------------


def render(template: Path, commit: str, answers: dict, dst: Path) -> Path:
    """The project as the template at `commit` renders it with `answers`, copy tasks left out."""
    try:
        import copier  # the Python that runs copier runs its migrations
    except ImportError:
        raise CannotMigrate(f"copier is not installed for {sys.executable}: run this with copier's Python") from None

    if not commit or commit.startswith("-"):
        raise CannotMigrate(f"{ANSWERS} records no template commit ({commit!r})")
    try:
        archive = git("archive", "--format=tar", commit, cwd=template)
    except subprocess.CalledProcessError as exc:
        reason = exc.stderr.decode(errors="replace").strip().splitlines()
        raise CannotMigrate(
            f"cannot read template commit {commit} from {template} ({reason[-1] if reason else 'git archive failed'})"
        ) from None
    source = dst.parent / f"{dst.name}-template"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(source, filter="data")
        else:  # Python before 3.11.4; the archive is the template's own tree
            tar.extractall(source)  # noqa: S202
    prune(source)
    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copier warns about what concerns only real copies
        copier.run_copy(
            str(source), str(dst), data=data, defaults=True, unsafe=True, skip_tasks=True, quiet=True, overwrite=True
        )
    return dst


def prune(source: Path) -> None:
    """Keep only the folders this migration reads: the whole template takes seconds more to render."""
    config = next((source / name for name in ("copier.yml", "copier.yaml") if (source / name).is_file()), None)
    subdirectory = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("_subdirectory") if config else None
    if not subdirectory:
        return
    for entry in (source / subdirectory).iterdir():
        if entry.name in SCANNED or entry.name == "bench":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# Python source: top-level units and import rewriting -------------------------


@dataclass(frozen=True)
class Unit:
    """One top-level statement with its decorators and the comment lines right above it."""

    kind: str  # "def" (function, class or constant), "import" or "other"
    key: str  # the name it defines, or its text
    start: int  # first line, 0-based
    end: int  # line after the last
    text: str


def defined_name(node: ast.stmt) -> str | None:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def split_units(text: str) -> tuple[list[Unit], list[str]]:
    """The top-level units of a module, and the non-blank lines between them (comments on their own)."""
    lines = text.splitlines(keepends=True)
    units, loose, previous = [], [], 0
    for node in ast.parse(text).body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        start = first
        while start > previous and lines[start - 1].lstrip().startswith("#"):
            start -= 1
        loose += [line.strip() for line in lines[previous:start] if line.strip()]
        end = node.end_lineno
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            # Indented comments right after the body close it: part of the definition.
            while end < len(lines) and lines[end][:1] in (" ", "\t") and lines[end].lstrip().startswith("#"):
                end += 1
        segment = "".join(lines[start:end])
        if not segment.endswith("\n"):
            segment += "\n"
        name = defined_name(node)
        if name:
            units.append(Unit("def", name, start, end, segment))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            units.append(Unit("import", segment.strip(), start, end, segment))
        else:
            units.append(Unit("other", segment.strip(), start, end, segment))
        previous = end
    loose += [line.strip() for line in lines[previous:] if line.strip()]
    return units, loose


def top_level_names(text: str) -> set[str]:
    try:
        return {unit.key for unit in split_units(text)[0] if unit.kind == "def"}
    except SyntaxError:
        return set()


def module_of(path: str) -> tuple[str | None, str | None]:
    """(module, package its relative imports start from) of a file under src/, else (None, None)."""
    parts = Path(path).with_suffix("").parts
    if len(parts) < 2 or parts[0] != "src":
        return None, None
    dotted = list(parts[1:])
    if dotted[-1] == "__init__":
        dotted.pop()
        return ".".join(dotted), ".".join(dotted)
    return ".".join(dotted), ".".join(dotted[:-1])


@dataclass
class Layout:
    """What moved in this update, and where each top-level name of the new package lives."""

    package: str
    moved: dict[str, str]
    split: dict[str, str]
    scripts: dict[str, str]
    defined: dict[str, list[str]] = field(default_factory=dict)  # name -> new modules (package-relative)

    def resolve(self, old: str, name: str) -> str | None:
        """The new module (package-relative) that defines `name` of the split module `old`, when just one does."""
        where = self.defined.get(name, [])
        inside = [module for module in where if module.startswith(f"{self.split[old]}.")]
        found = inside or where
        return found[0] if len(found) == 1 else None

    def old_module(self, absolute: str | None) -> str | None:
        """The package-relative name of a moved module, for its absolute name."""
        prefix = f"{self.package}."
        if not absolute or not absolute.startswith(prefix):
            return None
        rest = absolute[len(prefix) :]
        return rest if rest in self.moved or rest in self.split or rest in self.scripts else None

    def why_not(self, old: str) -> str:
        if old in self.scripts:
            return f"{old}.py is the script {self.scripts[old]} now, outside the package"
        return f"{old}.py was split over {self.package}.{self.split[old]}"


def absolute_module(node: ast.ImportFrom, package: str | None) -> str | None:
    if node.level == 0:
        return node.module
    if package is None:
        return None
    parts = package.split(".")
    if node.level - 1 >= len(parts):
        return None
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def relative_module(target: str, package: str) -> str:
    """`target` written relative to `package`, as `from <this> import ...` takes it."""
    have, want = package.split("."), target.split(".")
    common = 0
    while common < min(len(have), len(want)) and have[common] == want[common]:
        common += 1
    return "." * (len(have) - common + 1) + ".".join(want[common:])


def import_from(module: str, names: list[str], indent: str) -> str:
    """One `from module import names` statement, wrapped as ruff formats it when too long."""
    line = f"{indent}from {module} import {', '.join(names)}"
    if len(line) <= LINE_LENGTH:
        return line
    inner = "".join(f"{indent}    {name},\n" for name in names)
    return f"{indent}from {module} import (\n{inner}{indent})"


def one_line(code: str) -> str:
    """Statements on one line for the listing, `;` between them."""
    return " ".join(re.sub(r"\n\s*(?=(from|import)\s)", "; ", code).split())


def alias_text(alias: ast.alias) -> str:
    return f"{alias.name} as {alias.asname}" if alias.asname else alias.name


@dataclass
class Rewritten:
    text: str
    done: list[str] = field(default_factory=list)  # "line: old -> new"
    refused: list[str] = field(default_factory=list)  # "line: what to do"


class Rewriter:
    """Rewrites one module's imports of moved modules; byte offsets, as ast counts columns."""

    def __init__(self, text: str, layout: Layout, resolve_in: str | None, emit_in: str | None, keep: set[str]):
        self.text, self.layout, self.keep = text, layout, keep
        self.resolve_in, self.emit_in = resolve_in, emit_in
        self.data = text.encode("utf-8")
        self.starts = [0]
        for line in self.data.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))
        self.edits: list[tuple[int, int, str, int, str]] = []  # start, end, new text, line, description
        self.refused: list[str] = []

    def offset(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col

    def source(self, node: ast.AST) -> str:
        start, end = self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)
        return self.data[start:end].decode("utf-8")

    def kept(self, node: ast.AST) -> bool:
        """Lines the new release itself has are its own, written for the new layout."""
        lines = self.data.splitlines()[node.lineno - 1 : node.end_lineno]
        return all(line.decode("utf-8").strip() in self.keep for line in lines)

    def indent(self, node: ast.stmt) -> str | None:
        before = self.data[self.starts[node.lineno - 1] : self.offset(node.lineno, node.col_offset)].decode("utf-8")
        return before if not before.strip() else None

    def replace(self, node: ast.AST, new: str, description: bool = True) -> None:
        old = self.source(node)
        if new == old:
            return
        start, end = self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)
        self.edits.append((start, end, new, node.lineno, f"{one_line(old)} -> {one_line(new)}" if description else ""))

    def refuse(self, node: ast.AST, why: str) -> None:
        self.refused.append(f"{node.lineno}: `{' '.join(self.source(node).split())}`: {why}")

    def emitted(self, target: str, relative: bool) -> str:
        """How this file names the absolute module `target`: relative if it was, from where the file is now."""
        if relative and self.emit_in and target.split(".")[0] == self.emit_in.split(".")[0]:
            return relative_module(target, self.emit_in)
        return target

    def rewrite(self) -> Rewritten:
        tree = ast.parse(self.text)
        self.parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not self.kept(node):
                self.import_from(node)
            elif isinstance(node, ast.Import) and not self.kept(node):
                imported |= self.import_(node, tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and not self.kept(node):
                self.string(node)
        for node in imported:
            if not self.kept(node):
                self.attribute(node)
        return self.apply()

    # from ... import ...
    def import_from(self, node: ast.ImportFrom) -> None:
        layout, package = self.layout, self.layout.package
        target = absolute_module(node, self.resolve_in)
        if target is None:
            return
        relative = node.level > 0
        indent = self.indent(node)
        old = layout.old_module(target)
        if target == package:  # from <package> import featurize, config
            kept, moved = [], {}
            for alias in node.names:
                if alias.name in layout.moved:
                    parent, _, leaf = f"{package}.{layout.moved[alias.name]}".rpartition(".")
                    bound = alias.asname or alias.name
                    moved.setdefault(parent, []).append(leaf if bound == leaf else f"{leaf} as {bound}")
                else:
                    if alias.name in layout.split or alias.name in layout.scripts:
                        self.refuse(node, f"{layout.why_not(alias.name)}: import what you use from its new modules")
                    kept.append(alias_text(alias))
            if not moved:
                if relative and self.resolve_in != self.emit_in:
                    self.module_text(node, self.emitted(package, relative))
                return
            if indent is None:
                self.refuse(node, "shares its line with other code: rewrite it by hand")
                return
            statements = [import_from(self.emitted(package, relative), kept, indent)] if kept else []
            statements += [
                import_from(self.emitted(parent, relative), names, indent) for parent, names in moved.items()
            ]
            self.replace(node, "\n".join(statements).lstrip())
        elif old in layout.moved:
            self.module_text(node, self.emitted(f"{package}.{layout.moved[old]}", relative))
        elif old in layout.split:
            groups: dict[str, list[str]] = {}
            for alias in node.names:
                where = None if alias.name == "*" else layout.resolve(old, alias.name)
                if where is None:
                    self.refuse(
                        node,
                        f"{layout.why_not(old)}, and {alias.name!r} is in no single one of its modules: "
                        "import it from where it is now",
                    )
                    return
                groups.setdefault(f"{package}.{where}", []).append(alias_text(alias))
            if indent is None:
                self.refuse(node, "shares its line with other code: rewrite it by hand")
                return
            statements = [
                import_from(self.emitted(module, relative), names, indent) for module, names in groups.items()
            ]
            self.replace(node, "\n".join(statements).lstrip())
        elif old in layout.scripts:
            self.refuse(node, f"{layout.why_not(old)}: run it, or move what you import into your own module")
        elif relative and self.resolve_in != self.emit_in:
            self.module_text(node, self.emitted(target, relative))

    def module_text(self, node: ast.ImportFrom, module: str) -> None:
        """Replace only the module of `from <module> import ...`, keeping names, comments and layout."""
        old = self.source(node)
        found = re.match(r"from\s+(\.*\s*[\w.]*)\s+import\b", old)
        if not found or found.group(1).replace(" ", "") == module:
            return
        self.replace(node, old[: found.start(1)] + module + old[found.end(1) :])

    # import ...
    def import_(self, node: ast.Import, tree: ast.Module) -> set[ast.Attribute]:
        """Rewrite `import <package>.<old>`; the uses `<package>.<old>` it makes need rewriting as well."""
        layout, package = self.layout, self.layout.package
        uses: set[ast.Attribute] = set()
        names, changed = [], False
        for alias in node.names:
            old = layout.old_module(alias.name)
            if old in layout.moved:
                new = f"{package}.{layout.moved[old]}"
                names.append(f"{new} as {alias.asname}" if alias.asname else new)
                changed = True
                if not alias.asname:
                    uses |= self.uses_of(tree, old)
            elif old in layout.split and not alias.asname:
                targets = self.split_uses(node, tree, old)
                if targets is None:
                    names.append(alias_text(alias))
                    continue
                names += [f"{package}.{module}" for module in targets]
                changed = True
                uses |= self.uses_of(tree, old)
            else:
                if old is not None:
                    self.refuse(node, f"{layout.why_not(old)}: import what you use from its new modules")
                names.append(alias_text(alias))
        if changed:
            indent = self.indent(node)
            if indent is None:
                self.refuse(node, "shares its line with other code: rewrite it by hand")
                return set()
            self.replace(node, "\n".join(f"{indent}import {name}" for name in dict.fromkeys(names)).lstrip())
        return uses

    def uses_of(self, tree: ast.Module, old: str) -> set[ast.Attribute]:
        """The expressions `<package>.<old>` in the module."""
        return {
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr == old
            and isinstance(node.value, ast.Name)
            and node.value.id == self.layout.package
        }

    def split_uses(self, node: ast.Import, tree: ast.Module, old: str) -> list[str] | None:
        """The new modules that `<package>.<old>.<name>` uses need, or None (refused) when one cannot be told."""
        targets = []
        for use in sorted(self.uses_of(tree, old), key=lambda n: (n.lineno, n.col_offset)):
            parent = self.parents.get(use)
            where = self.layout.resolve(old, parent.attr) if isinstance(parent, ast.Attribute) else None
            if where is None:
                self.refuse(
                    node,
                    f"{self.layout.why_not(old)}, and line {use.lineno} uses the module as a whole or a name "
                    "in no single new module: use the new modules",
                )
                return None
            targets.append(where)
        if not targets:
            self.refuse(node, f"{self.layout.why_not(old)}: import the new modules you need")
            return None
        return list(dict.fromkeys(targets))

    def attribute(self, node: ast.Attribute) -> None:
        """`<package>.<old>` -> `<package>.<new>` where used (a split module's by the name used after it)."""
        layout, old = self.layout, node.attr
        if not re.fullmatch(rf"{re.escape(layout.package)}\s*\.\s*{old}", self.source(node)):
            # Positions inside f-strings are not exact before Python 3.12: never edit a guess.
            self.refuse(node, f"rewrite this use of {layout.package}.{old} by hand")
            return
        if old in layout.moved:
            self.replace(node, f"{layout.package}.{layout.moved[old]}", description=False)
        elif old in layout.split:
            parent = self.parents.get(node)
            where = layout.resolve(old, parent.attr) if isinstance(parent, ast.Attribute) else None
            if where:
                self.replace(node, f"{layout.package}.{where}", description=False)

    def string(self, node: ast.Constant) -> None:
        """Dotted names in strings (patch targets, import_module arguments)."""
        layout = self.layout
        found = re.fullmatch(rf"{re.escape(layout.package)}\.(\w+)((?:\.\w+)*)", node.value)
        if not found or found.group(1) not in (*layout.moved, *layout.split, *layout.scripts):
            return
        old, rest = found.group(1), found.group(2)
        if old in layout.moved:
            new = f"{layout.package}.{layout.moved[old]}{rest}"
        else:
            where = layout.resolve(old, rest.split(".")[1]) if old in layout.split and rest else None
            if where is None:
                self.refuse(node, f"{layout.why_not(old)}: name the new module in this string")
                return
            new = f"{layout.package}.{where}{rest}"
        literal = self.source(node)
        if literal.count(node.value) != 1:
            self.refuse(node, f"write {new!r} in this string")
            return
        self.replace(node, literal.replace(node.value, new))

    def apply(self) -> Rewritten:
        data, done, last = self.data, [], None
        for start, end, new, line, description in sorted(self.edits, key=lambda edit: edit[0], reverse=True):
            if last is not None and end > last:
                continue  # overlaps an edit already made
            data = data[:start] + new.encode("utf-8") + data[end:]
            last = start
            if description:
                done.append((line, description))
        return Rewritten(data.decode("utf-8"), [f"{line}: {text}" for line, text in sorted(done)], self.refused)


SAME = "<same>"


def rewrite_imports(
    text: str, layout: Layout, resolve_in: str | None, emit_in: str | None = SAME, keep: set[str] | None = None
) -> Rewritten:
    """`text` with imports of moved modules pointing at the new ones.

    `resolve_in` is the package relative imports of `text` start from; `emit_in` the one they
    are written for (where the file is now, if it moved; None outside the package); lines in
    `keep` stay as they are.
    """
    emit_in = resolve_in if emit_in == SAME else emit_in
    return Rewriter(text, layout, resolve_in, emit_in, keep or set()).rewrite()


# Merging ---------------------------------------------------------------------


def merge3(ours: str, base: str, theirs: str, labels: tuple[str, str, str]) -> tuple[str, int]:
    """`git merge-file`: the merged text and its number of conflicts."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, text in zip(("ours", "base", "theirs"), (ours, base, theirs), strict=True):
            path = Path(tmp, name)
            path.write_bytes(text.encode("utf-8"))
            paths.append(str(path))
        done = subprocess.run(
            ["git", "merge-file", "-p", "-L", labels[0], "-L", labels[1], "-L", labels[2], *paths],
            capture_output=True,
        )
    if done.returncode > 127:
        raise RuntimeError(f"git merge-file failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode("utf-8"), done.returncode


@dataclass
class Placed:
    """The merge of a split module: new text per new module, and conflicts per new module."""

    texts: dict[str, str]
    conflicts: dict[str, int]


def place_split(
    ours: str,
    base: str,
    new_modules: dict[str, str],
    folder: str,
    labels: tuple[str, str, str],
    for_module: Callable[[str, str], str] = lambda text, module: text,
) -> Placed | str | None:
    """Merge the edits of a split module into the new modules (package-relative name -> text).

    `for_module(text, module)` adapts a definition of the old module to the module it goes to.
    Returns what was merged, None when the project changed nothing that matters, or
    the reason the edits cannot all be placed.
    """
    try:
        ours_units, ours_loose = split_units(ours)
        base_units, base_loose = split_units(base)
    except SyntaxError as exc:
        return f"it does not parse ({exc.msg}, line {exc.lineno})"
    ours_defs = {unit.key: unit for unit in ours_units if unit.kind == "def"}
    base_defs = {unit.key: unit for unit in base_units if unit.kind == "def"}
    if len(ours_defs) != sum(unit.kind == "def" for unit in ours_units):
        return "it defines a name twice"
    if [u.text for u in ours_units if u.kind == "other"] != [u.text for u in base_units if u.kind == "other"]:
        return "module-level code other than definitions and imports changed"
    if ours_loose != base_loose:
        return "comments outside definitions changed"
    if removed := [name for name in base_defs if name not in ours_defs]:
        return f"{', '.join(removed)} removed"
    changed = [name for name in ours_defs if name in base_defs and ours_defs[name].text != base_defs[name].text]
    added = [name for name in ours_defs if name not in base_defs]
    base_imports = {unit.key for unit in base_units if unit.kind == "import"}
    added_imports = [unit for unit in ours_units if unit.kind == "import" and unit.key not in base_imports]
    if not (changed or added or added_imports):
        return None

    parsed = {module: split_units(text)[0] for module, text in new_modules.items()}
    homes: dict[str, str] = {}
    for name in changed:
        found = [module for module, units in parsed.items() if any(u.kind == "def" and u.key == name for u in units)]
        inside = [module for module in found if module.startswith(f"{folder}.")]
        found = inside or found
        if len(found) > 1:  # the one that still has the release's text, if just one does
            same = [m for m in found if any(u.key == name and u.text == base_defs[name].text for u in parsed[m])]
            found = same if len(same) == 1 else found
        if len(found) != 1:
            where = "no new module" if not found else "several new modules (" + ", ".join(found) + ")"
            return f"{name} is defined in {where}"
        homes[name] = found[0]
    targets = sorted(set(homes.values()))
    if added and len(targets) != 1:
        why = "no edited definition" if not targets else "edited definitions in several new modules"
        return f"{', '.join(added)} added beside {why}, so no one module to put them in"
    if added_imports and not targets:
        return "imports added without an edited definition"

    placed = Placed({}, {})
    for module in targets:
        lines = new_modules[module].splitlines(keepends=True)
        units = {u.key: u for u in parsed[module] if u.kind == "def"}
        inserts: dict[int, list[str]] = {}  # line index -> texts to insert before it
        replaced: list[tuple[int, int, str]] = []
        for name in (n for n in changed if homes[n] == module):
            theirs = units[name]
            mine, common = for_module(ours_defs[name].text, module), for_module(base_defs[name].text, module)
            text, conflicts = merge3(mine, common, theirs.text, labels)
            placed.conflicts[module] = placed.conflicts.get(module, 0) + conflicts
            replaced.append((theirs.start, theirs.end, text))
        order = [unit.key for unit in ours_units if unit.kind == "def"]
        for name in added if module == targets[0] else []:
            before = next((n for n in reversed(order[: order.index(name)]) if n in units), None)
            at = units[before].end if before else len(lines)
            inserts.setdefault(at, []).append("\n\n" + for_module(ours_defs[name].text, module))
        body = "".join(text for *_, text in replaced) + "".join(
            for_module(ours_defs[n].text, module) for n in added if module == targets[0]
        )
        imports = [u for u in parsed[module] if u.kind == "import"]
        present = {u.key for u in imports}
        adapted = [for_module(unit.text, module) for unit in added_imports]
        wanted = [text for text in adapted if text.strip() not in present and uses_any(body, bound_names(text))]
        if wanted:
            at = imports[-1].end if imports else next((u.start for u in parsed[module] if u.kind == "def"), 0)
            inserts.setdefault(at, []).insert(0, "".join(wanted))
        out, position = [], 0
        cuts = sorted(replaced + [(at, at, None) for at in inserts], key=lambda cut: cut[:2])
        for start, end, text in cuts:
            out.append("".join(lines[position:start]))
            if text is None:
                out.extend(inserts[start])
            else:
                out.append(text)
            position = max(position, end)
        out.append("".join(lines[position:]))
        merged = "".join(out)
        placed.texts[module] = merged if merged.endswith("\n") else merged + "\n"
    return placed


def bound_names(statement: str) -> set[str]:
    names = set()
    for node in ast.parse(statement).body:
        for alias in getattr(node, "names", []):
            names.add(alias.asname or alias.name.split(".")[0])
    return names


def uses_any(text: str, names: set[str]) -> bool:
    return any(re.search(rf"\b{re.escape(name)}\b", text) for name in names)


def record_conflict(path: Path, base: str, ours: str, theirs: str) -> None:
    """Mark `path` unmerged in the index, as copier marks its own conflicts, so that tools list it."""
    mode = "100755" if path.stat().st_mode & 0o111 else "100644"
    name = git("rev-parse", "--show-prefix").decode().strip() + path.as_posix()  # the index names paths from the top
    entries = [f"0 {'0' * 40}\t{name}"]
    for stage, text in (("1", base), ("2", ours), ("3", theirs)):
        sha = git("hash-object", "-w", "--stdin", data=text.encode("utf-8")).decode().strip()
        entries.append(f"{mode} {sha} {stage}\t{name}")
    git("update-index", "--index-info", data=("\n".join(entries) + "\n").encode())


# The migration ---------------------------------------------------------------


@dataclass
class Report:
    merged: list[str] = field(default_factory=list)
    conflicted: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    rewrote: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def print(self) -> None:
        sections = [
            ("The project's edits of moved modules, merged into their new files:", self.merged),
            ("Left for you to merge by hand (`make lint` fails until done):", self.left),
            ("Imports of moved modules rewritten:", self.rewrote),
            ("Imports of moved modules not rewritten, change them by hand:", self.refused),
        ]
        shown = [(title, items) for title, items in sections if items]
        if not shown:
            return
        print(f"migration to {VERSION} (package layout):")
        for title, items in shown:
            print(f"  {title}")
            for item in items:
                print(f"    {item}")
        review = sorted(set(self.conflicted))
        if review:
            print(f"  Review before committing (conflict markers): {', '.join(review)}")
        if self.rewrote:
            print("  `make lint` sorts the imports rewritten above if their order changed.")


def old_module_paths(package: str) -> dict[str, str]:
    """Old module -> its path in the project, for every module this release moved."""
    paths = {old: f"src/{package}/{old}.py" for old in (*MOVED, *SPLIT, *SCRIPTS)}
    return paths


def new_path(package: str, old: str) -> str:
    if old in SCRIPTS:
        return SCRIPTS[old]
    return f"src/{package}/{MOVED[old].replace('.', '/')}.py"


def package_files(root: Path, package: str) -> dict[str, str]:
    """Package-relative module name -> its path in the project, for every module of the package under `root`."""
    base = root / "src" / package
    files = {}
    for path in sorted(base.rglob("*.py")) if base.is_dir() else []:
        if "__pycache__" in path.parts:
            continue
        name = ".".join(path.relative_to(base).with_suffix("").parts)
        files[name.removesuffix(".__init__") if name != "__init__" else ""] = path.relative_to(root).as_posix()
    return files


def package_modules(root: Path, package: str) -> dict[str, str]:
    """Package-relative module name -> text, for every module of the package under `root`."""
    return {name: (root / path).read_text(encoding="utf-8") for name, path in package_files(root, package).items()}


def migrate(project: Path, template: Path) -> Report:
    report = Report()
    old_answers_text = head_file(ANSWERS)
    if old_answers_text is None:
        return report
    old_answers = yaml.safe_load(old_answers_text) or {}
    new_answers = yaml.safe_load((project / ANSWERS).read_text(encoding="utf-8")) or {}
    old_package = str(old_answers.get("package_name", ""))
    package = str(new_answers.get("package_name", old_package))
    paths = old_module_paths(old_package)
    in_head = {old: text for old, path in paths.items() if (text := head_file(path)) is not None}
    if not in_head:
        return report  # generated with the new layout, or the update is committed already

    with tempfile.TemporaryDirectory() as tmp:
        try:
            old_render = render(template, str(old_answers.get("_commit", "")), old_answers, Path(tmp) / "old")
        except CannotMigrate as exc:
            edited = ", ".join(sorted(paths[old] for old in in_head))
            raise CannotMigrate(
                f"{exc}. The project's versions of the moved modules are in HEAD ({edited}): "
                "compare each with its new file and carry your edits over by hand (git show HEAD:<path>)"
            ) from None
        new_commit = str(new_answers.get("_commit", ""))
        try:
            new_render = render(template, new_commit, new_answers, Path(tmp) / "new")
        except CannotMigrate:  # a template without that commit: the checkout copier rendered from
            new_render = render(template, "HEAD", new_answers, Path(tmp) / "new")
        # From 0.4.0 the platform is the runtime package, not the project's: this step only carries the project's
        # imports through the layout of 0.3.0, and the runtime migration keeps the project's edits of the modules.
        target_render = new_render
        thin = not (new_render / "src" / package / "cli.py").is_file()
        if thin:
            new_render = render(template, layout_release(template), new_answers, Path(tmp) / "layout")

        released = {old for old in in_head if (old_render / paths[old]).is_file()}
        # Moved by this update: in the release the project came from, and gone from the project now.
        gone = {old for old in released if not (project / paths[old]).exists()}
        layout = Layout(
            package,
            moved={old: new for old, new in MOVED.items() if old in gone},
            split={old: new for old, new in SPLIT.items() if old in gone},
            scripts={old: new for old, new in SCRIPTS.items() if old in gone},
        )
        # Module names for split modules: where each name is defined in the new release.
        pristine = package_modules(new_render, package)
        pristine_files = package_files(new_render, package)
        layout.defined = defined_in(pristine)
        labels = (
            "this project (before updating)",
            f"template {old_answers.get('_commit')}",
            f"template {new_answers.get('_commit')}",
        )
        for old in sorted(gone):
            ours, base = in_head[old].decode("utf-8"), (old_render / paths[old]).read_text(encoding="utf-8")
            if ours == base:
                continue  # not edited: copier put the new module in place
            if thin and (old in SPLIT or not (target_render / new_path(package, old)).is_file()):
                continue  # the runtime's module now: the runtime migration keeps the project's version
            if thin:
                merge_moved(project, old, ours, base, layout, target_render, labels, report)
            elif old in SPLIT:
                merge_split(project, old, ours, base, layout, pristine, pristine_files, labels, report)
            else:
                merge_moved(project, old, ours, base, layout, new_render, labels, report)

        # Where names are now, merged edits included; a module still in conflict counts as released.
        if not thin:
            layout.defined = defined_in(package_modules(project, package), fallback=pristine)
        rewrite_project(project, layout, new_render, report)
    return report


def layout_release(template: Path) -> str:
    """The template's commit of release 0.3.0: its tag, else the commit that added its CHANGELOG heading."""
    try:
        return git("rev-parse", "--verify", "--quiet", f"v{VERSION}^{{commit}}", cwd=template).decode().strip()
    except subprocess.CalledProcessError:
        pass
    found = git("log", "--format=%H", "--reverse", "-S", f"## [{VERSION}]", "--", "CHANGELOG.md", cwd=template).split()
    if not found:
        raise CannotMigrate(f"the template repository {template} has no release {VERSION} to read the layout from")
    return found[0].decode()


def defined_in(modules: dict[str, str], fallback: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Top-level name -> the modules defining it; a module that does not parse is read from `fallback`."""
    defined: dict[str, list[str]] = {}
    for module, text in modules.items():
        try:
            names = {unit.key for unit in split_units(text)[0] if unit.kind == "def"}
        except SyntaxError:
            names = top_level_names((fallback or {}).get(module, ""))
        for name in names:
            defined.setdefault(name, []).append(module)
    return defined


def merge_moved(
    project: Path, old: str, ours: str, base: str, layout: Layout, new_render: Path, labels: tuple, report: Report
) -> None:
    """Three-way merge of a module that moved whole, into its new file."""
    package = layout.package
    old_path, target = f"src/{package}/{old}.py", new_path(package, old)
    if not (new_render / target).is_file():
        report.left.append(f"{old_path}: the new release has no {target}; your version is in HEAD")
        return
    theirs = (new_render / target).read_text(encoding="utf-8")
    if old in SCRIPTS:  # a script at the project root now: its imports name the package absolutely
        resolve_in, emit_in = package, None
    else:
        resolve_in, emit_in = package, module_of(target)[1]
    ours_new = rewrite_imports(ours, layout, resolve_in, emit_in).text
    base_new = rewrite_imports(base, layout, resolve_in, emit_in).text
    merged, conflicts = merge3(ours_new, base_new, theirs, labels)
    write_merge(project, target, old_path, merged, conflicts, theirs, report, (base_new, ours_new))


def write_merge(
    project: Path,
    target: str,
    old_path: str,
    merged: str,
    conflicts: int,
    theirs: str,
    report: Report,
    sides: tuple[str, str] | None,
) -> bool:
    """Write one merged file unless it already changed; say what was done."""
    path = project / target
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    if current == merged:
        return False  # merged already (this migration ran before)
    if current is not None and current != theirs:
        report.left.append(f"{target}: changed since the update, so your edits of {old_path} (in HEAD) are not merged")
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(merged, encoding="utf-8")
    note = f" ({conflicts} conflict{'s' if conflicts != 1 else ''}: resolve the <<<<<<< markers)" if conflicts else ""
    report.merged.append(f"{target} <- {old_path}{note}")
    if conflicts:
        report.conflicted.append(target)
        if sides is not None:
            record_conflict(Path(target), sides[0], sides[1], theirs)
    return True


def merge_split(
    project: Path,
    old: str,
    ours: str,
    base: str,
    layout: Layout,
    pristine: dict[str, str],
    pristine_files: dict[str, str],
    labels: tuple,
    report: Report,
) -> None:
    """Merge a split module's edits definition by definition, or leave the project's file beside the new ones."""
    package, folder = layout.package, SPLIT[old]
    old_path = f"src/{package}/{old}.py"
    emit_in = f"{package}.{folder}"
    ours_new = rewrite_imports(ours, layout, package, emit_in).text
    base_new = rewrite_imports(base, layout, package, emit_in).text

    def for_module(text: str, module: str) -> str:
        """A definition written for the subpackage, its relative imports made right for the module it goes to."""
        home = module_of(pristine_files[module])[1]
        return text if home == emit_in else rewrite_imports(text, layout, emit_in, home).text

    placed = place_split(ours_new, base_new, pristine, folder, labels, for_module)
    if placed is None:
        return
    if isinstance(placed, Placed):
        files = {module: pristine_files[module] for module in placed.texts}
        current = {
            m: (project / p).read_text(encoding="utf-8") if (project / p).is_file() else None for m, p in files.items()
        }
        if all(current[m] == placed.texts[m] for m in files):
            return  # merged already
        if all(current[m] == pristine[m] for m in files):
            for module, target in files.items():
                conflicts = placed.conflicts.get(module, 0)
                sides = (pristine[module], placed.texts[module])  # unmerged, so that tools list it
                write_merge(project, target, old_path, placed.texts[module], conflicts, pristine[module], report, sides)
            return
        placed = "the new modules changed since the update"
    orig = f"src/{package}/{folder}/{old}.py.orig"
    path = project / orig
    note = (
        f"{orig}: your {old_path}, whose edits could not be merged ({placed}): "
        f"carry them into {package}.{folder}, then delete it"
    )
    if path.is_file() and path.read_text(encoding="utf-8") == ours:
        return
    if path.exists():
        report.left.append(f"{orig} exists already: your {old_path} is in HEAD")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ours, encoding="utf-8")
    report.left.append(note)


def rewrite_project(project: Path, layout: Layout, new_render: Path, report: Report) -> None:
    """Point the project's own imports of moved modules at the new ones."""
    if not (layout.moved or layout.split or layout.scripts):
        return
    for top in SCANNED:
        for path in sorted((project / top).rglob("*.py")) if (project / top).is_dir() else []:
            relative = path.relative_to(project)
            if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
                continue
            data = path.read_bytes()
            text = data.decode("utf-8")
            release = new_render / relative
            keep = (
                {line.strip() for line in release.read_text(encoding="utf-8").splitlines()}
                if release.is_file()
                else set()
            )
            if MARKER.search(data):  # a conflict to resolve first: it does not parse
                if stale_imports(text, layout, keep):
                    report.refused.append(
                        f"{relative.as_posix()}: has conflict markers and imports moved modules: resolve it, "
                        "then import from the new modules"
                    )
                continue
            _, package = module_of(relative.as_posix())
            try:
                done = rewrite_imports(text, layout, package, keep=keep)
            except SyntaxError:
                report.refused.append(f"{relative.as_posix()}: does not parse, so its imports were not checked")
                continue
            if done.text != text:
                path.write_text(done.text, encoding="utf-8")
            report.rewrote += [f"{relative.as_posix()}:{item}" for item in done.done]
            report.refused += [f"{relative.as_posix()}:{item}" for item in done.refused]


def stale_imports(text: str, layout: Layout, keep: set[str]) -> bool:
    """Whether a line of `text` the new release lacks imports a moved module (for text that does not parse)."""
    old = "|".join(re.escape(name) for name in (*layout.moved, *layout.split, *layout.scripts))
    package = re.escape(layout.package)
    patterns = [
        rf"from\s+(\.+|{package}\.)({old})\s+import\b",
        rf"from\s+(\.+|{package})\s+import\s+\(?\s*([\w\s,]*,\s*)?({old})\b",
        rf"import\s+{package}\.({old})\b",
    ]
    lines = (line.strip() for line in text.splitlines())
    return any(re.match(pattern, line) for line in lines if line not in keep for pattern in patterns)


def main(argv: list[str]) -> int:
    # The template checkout copier renders from (`_copier_conf.src_path`): a clone of a local
    # template or of a gh:/https URL, with its history. Run by hand, the repository of this file.
    template = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1]
    try:
        report = migrate(Path.cwd(), template)
    except CannotMigrate as exc:
        print(f"migration to {VERSION} (package layout): {exc}", file=sys.stderr)
        return 1
    report.print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
