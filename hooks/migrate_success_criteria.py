"""Update migration to 0.2.0: rename `evaluate.criteria` to `evaluate.success_criteria` in params.yaml.

Copier runs it in the project before it merges the new template release, so the
project's own bounds (and comments) travel with the renamed key and the merge
sees the same rename on both sides. The key is renamed in place, on its own
line, so nothing else in the file changes. Safe to rerun: once the old key is
gone it does nothing. When it cannot rename safely it changes nothing, says
why and exits non-zero, which stops the update before any file is touched.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

PARAMS = Path("params.yaml")
OLD, NEW = "criteria", "success_criteria"
HOW = f"rename evaluate.{OLD} to evaluate.{NEW} in {PARAMS} by hand, commit, then run `copier update` again"


class CannotMigrate(Exception):
    """params.yaml is in a shape this migration does not rewrite; the message says what to do."""


def evaluate_block(lines: list[str]) -> range:
    """Line numbers of the top-level `evaluate:` block (its key line excluded)."""
    start = next((i for i, line in enumerate(lines) if re.match(r"evaluate:\s*(#.*)?$", line)), None)
    if start is None:
        raise CannotMigrate(f"{PARAMS} has no block-style 'evaluate:' section: {HOW}")
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if lines[i].strip() and not lines[i][0].isspace() and lines[i][0] != "#"
        ),
        len(lines),
    )
    return range(start + 1, end)


def rename(text: str) -> str:
    """`text` with the evaluate section's `criteria` key renamed; the same text when there is nothing to do."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CannotMigrate(
            f"{PARAMS} is not valid YAML ({exc}): fix it, commit, then run `copier update` again"
        ) from None
    section = data.get("evaluate") if isinstance(data, dict) else None
    if not isinstance(section, dict) or OLD not in section:
        return text
    if NEW in section:
        raise CannotMigrate(f"{PARAMS} has both evaluate.{OLD} and evaluate.{NEW}: keep one, commit, then update again")

    lines = text.splitlines(keepends=True)
    block = evaluate_block(lines)
    children = [i for i in block if lines[i].strip() and not lines[i].lstrip().startswith("#")]
    indent = re.match(r"\s*", lines[children[0]]).group(0) if children else ""
    hits = [i for i in children if re.match(rf"{indent}{OLD}\s*:", lines[i])]
    if len(hits) != 1:
        raise CannotMigrate(f"{PARAMS}: cannot find the line of evaluate.{OLD}: {HOW}")
    lines[hits[0]] = lines[hits[0]].replace(OLD, NEW, 1)
    migrated = "".join(lines)

    # Trust the text edit only if it did exactly the rename and nothing else.
    expected = {**section}
    expected[NEW] = expected.pop(OLD)
    after = yaml.safe_load(migrated)
    if after.get("evaluate") != expected or {k: v for k, v in after.items() if k != "evaluate"} != {
        k: v for k, v in data.items() if k != "evaluate"
    }:
        raise CannotMigrate(f"{PARAMS}: renaming the key in place would change other values: {HOW}")
    return migrated


def main() -> int:
    if not PARAMS.exists():
        print(f"{PARAMS} not found: nothing to migrate (evaluate.{OLD} -> evaluate.{NEW})")
        return 0
    before = PARAMS.read_text(encoding="utf-8")
    try:
        after = rename(before)
    except CannotMigrate as exc:
        print(f"migration to 0.2.0 stopped the update: {exc}", file=sys.stderr)
        return 1
    if after == before:
        return 0
    PARAMS.write_text(after, encoding="utf-8")
    # Copier diffs the git index against the old release; staging the rename makes
    # the project's side of the merge carry it.
    subprocess.run(["git", "add", "--", str(PARAMS)], check=False)
    print(f"{PARAMS}: renamed evaluate.{OLD} to evaluate.{NEW} (your values kept)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
