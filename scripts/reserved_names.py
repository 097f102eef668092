"""Write includes/reserved_names.jinja: the names a generated project's package may not take.

A package named like a module the project imports, directly or through any dependency at run
time, shadows that module or is shadowed by it, and imports break. The list is the union of

- Python's keywords (soft keywords such as `match` are valid module names);
- the standard library: `sys.stdlib_module_names` and `sys.builtin_module_names` of every
  interpreter given (one per Python version the template offers);
- every top-level module of the environments given: what `pkgutil` finds on their `sys.path`
  (`.pth` entries included) and the top-level names their distributions declare or install;
- the top-level modules of extra site directories (`--site`): packages a generated project's
  lock file installs only on another Python version or platform, installed there with
  `uv pip install --target DIR --no-deps --python-platform ... --python-version ...`;
- the installers that may sit in a project's environment (pip, setuptools, uv) and the folders of a
  generated project that Python imports from its root (src, tests, pipelines),

kept to the names package_name's pattern allows. Names are only added: a name found on one
platform stays when the script runs on another (--replace writes only what it finds).

How the committed list was made: a project generated with dvc_remote=s3, its environment made
with `uv sync --all-extras` (Python 3.11, Linux); each Python version's interpreter; and a site
directory holding what the project's uv.lock adds for Python 3.10 and for Windows (async-timeout,
exceptiongroup, pytz, tomli, pywin32, tzdata, waitress, httpx2-jsfetch):

    python scripts/reserved_names.py --python PROJECT/.venv/bin/python \
        --stdlib python3.10 --stdlib python3.11 --stdlib python3.12 --stdlib python3.13 --site DIR
    python scripts/reserved_names.py --check --python PROJECT/.venv/bin/python

--check writes nothing and exits 1 naming what the environments import that the list lacks.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = ROOT / "includes" / "reserved_names.jinja"
# package_name's own pattern (copier.yml): other names cannot be answered anyway.
VALID = re.compile(r"[a-z_][a-z0-9_]*\Z")
# Installers an environment may carry (uv: `make setup` installs it where it is not on PATH), and the
# project's own importable folders.
ALWAYS = {"pip", "setuptools", "pkg_resources", "_distutils_hack", "wheel", "uv", "src", "tests", "pipelines"}
MODULE_FILE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\..*)?\.(py|pyc|pyd|so)\Z")

# Runs inside each interpreter: prints the top-level names it can import, as JSON.
PROBE = r"""
import importlib.metadata, json, keyword, os, pkgutil, sys
names = set(keyword.kwlist)
names |= set(sys.stdlib_module_names) | set(sys.builtin_module_names)
if sys.argv[1] == "environment":
    # What the environment installs, not a project's own source folder (an editable install).
    prefixes = tuple(os.path.realpath(p) + os.sep for p in {sys.prefix, sys.base_prefix})
    path = [p for p in sys.path if p and os.path.realpath(p).startswith(prefixes)]
    names |= {module.name for module in pkgutil.iter_modules(path)}
    names |= set(importlib.metadata.packages_distributions())
print(json.dumps(sorted(names)))
"""

HEADER = """\
{#- Names a generated package must not take: a package named like a module the project
    imports (directly or through a dependency, at run time) shadows it or is shadowed by it.
    Written by scripts/reserved_names.py, which explains how the list is made: Python's
    keywords, the standard library of Python 3.10 to 3.13, every top-level module of a
    generated project's environment (all extras, both DVC remotes) and of the packages its
    lock file installs only on other Python versions or platforms, pip, setuptools and uv, and
    the project's own folders (the script's docstring gives the exact recipe).
    tests/test_validators.py checks the standard library and the direct dependencies; the
    slow tests check a freshly installed project environment. -#}
{%- macro reserved_package_names() -%}
"""
FOOTER = "\n{%- endmacro -%}\n"


def listed() -> set[str]:
    """The names the include lists now."""
    body = INCLUDE.read_text(encoding="utf-8").split("{%- macro reserved_package_names() -%}", 1)[1]
    return {name for name in body.split("{%- endmacro", 1)[0].split() if VALID.match(name)}


def probe(python: str, kind: str) -> set[str]:
    """What one interpreter imports: its standard library only (-I -S), or its whole environment."""
    flags = ["-I", "-S"] if kind == "stdlib" else ["-I"]
    with tempfile.TemporaryDirectory() as empty:  # nothing importable from the working directory
        done = subprocess.run(
            [python, *flags, "-c", PROBE, kind], cwd=empty, capture_output=True, text=True, check=True
        )
    return set(json.loads(done.stdout))


def site_names(site: Path) -> set[str]:
    """Top-level modules of a site directory, for any platform: what its distributions install, and `.pth` folders."""
    names: set[str] = set()
    for record in site.glob("*.dist-info/RECORD"):
        for line in record.read_text(encoding="utf-8").splitlines():
            top = line.split(",", 1)[0].replace("\\", "/").split("/")
            # Scripts go to ../bin, or to bin/ in a --target install: not modules.
            if len(top) > 1 and not top[0].endswith((".dist-info", ".data")) and top[0] not in ("..", "bin"):
                names.add(top[0])
            elif match := MODULE_FILE.match(top[0]):
                names.add(match.group(1))
    for pth in site.glob("*.pth"):
        for line in pth.read_text(encoding="utf-8").splitlines():
            folder = site / line.strip().replace("\\", "/")
            if line.strip() and not line.startswith(("#", "import")) and folder.is_dir():
                for child in folder.iterdir():
                    if (child / "__init__.py").is_file():
                        names.add(child.name)
                    elif match := MODULE_FILE.match(child.name):
                        names.add(match.group(1))
    return names


def render(names: set[str]) -> str:
    body = "\n".join(textwrap.wrap(" ".join(sorted(names)), width=100, break_on_hyphens=False))
    return HEADER + body + FOOTER


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", default=[], help="a project environment's interpreter")
    parser.add_argument("--stdlib", action="append", default=[], help="an interpreter whose standard library counts")
    parser.add_argument("--site", action="append", default=[], type=Path, help="an extra site directory")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on missing names")
    parser.add_argument("--replace", action="store_true", help="write only the names found now, dropping the rest")
    args = parser.parse_args(argv)

    found = set(ALWAYS)
    for python in args.python:
        found |= probe(python, "environment")
    for python in args.stdlib:
        found |= probe(python, "stdlib")
    for site in args.site:
        found |= site_names(site)
    found = {name for name in found if VALID.match(name)}
    current = listed()
    if args.check:
        missing = sorted(found - current)
        if missing:
            print(
                f"includes/reserved_names.jinja lacks {' '.join(missing)}: run scripts/reserved_names.py "
                "with this environment's interpreter and commit the include",
                file=sys.stderr,
            )
            return 1
        return 0
    INCLUDE.write_text(render(found if args.replace else found | current), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
