"""Cookiecutter front door: replace cookiecutter's placeholder output with `copier copy` of the same answers.

Cookiecutter renders this file with Jinja before running it, in the new project
folder, with cookiecutter's own Python. Copier then renders `template/` there
with the answers given to cookiecutter and records an answers file whose
_src_path is the template's real location, so `copier update` works later.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

CONTEXT = json.loads(r"""{{ cookiecutter | jsonify }}""")
INSTALL = (
    "install it beside cookiecutter: `pipx inject cookiecutter copier` or `uv tool install cookiecutter --with copier`"
)


def template_source(context: dict) -> str:
    """The template as copier should record it: the URL the user gave (expanded), or the folder as an absolute path."""
    from cookiecutter.config import get_user_config
    from cookiecutter.repository import expand_abbreviations, is_repo_url, is_zip_file

    given = context["_template"]
    if is_zip_file(given):
        raise SystemExit(f"{given}: a zip archive has no git history, which `copier update` needs; give the repository")
    url = expand_abbreviations(given, get_user_config()["abbreviations"])
    if is_repo_url(url):
        return url.removeprefix("git+")
    # Cookiecutter keeps a local template path as typed; hooks run in the new project,
    # so a relative one is resolved against where cookiecutter was started.
    folder = Path(context["_repo_dir"]).expanduser()
    candidates = (
        [folder]
        if folder.is_absolute()
        else [Path(os.environ.get("PWD", ".")) / folder, Path(context["_output_dir"]) / folder]
    )
    for candidate in candidates:
        if (candidate / "copier.yml").is_file():
            return str(candidate.resolve())
    raise SystemExit(f"cannot locate the template folder {folder}: run cookiecutter with an absolute path or a URL")


def main() -> int:
    try:
        import copier
    except ImportError:
        print(f"This template renders with copier: {INSTALL}", file=sys.stderr)
        return 1
    # An empty answer is one copier derives from where the template comes from (runtime_source): left to copier.
    answers = {key: value for key, value in CONTEXT.items() if not key.startswith("_") and value != ""}
    source = template_source(CONTEXT)
    project = Path.cwd()
    # Only cookiecutter's placeholder is here; copier writes the real project in its place.
    for child in project.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    try:
        copier.run_copy(
            source,
            str(project),
            data=answers,
            defaults=True,
            unsafe=True,  # the same trust cookiecutter gives its own hooks
            vcs_ref=CONTEXT.get("_checkout") or None,  # copier's default: the newest release
        )
    except (ValueError, copier.errors.CopierError) as exc:
        # Copier's last line names the question, the value and the fix (the validators' text).
        print(str(exc).strip().splitlines()[-1], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
