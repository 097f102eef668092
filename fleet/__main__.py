"""Command line of the fleet report: `python -m fleet [--update] [--json] TARGET... | @list-file`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .core import Result, inspect

COLUMNS = ("project", "version", "newest", "status", "details")


def table(results: list[Result]) -> str:
    rows = [
        (r.project, r.version or "-", r.newest or "-", r.status, ", ".join(r.conflicts) or r.message) for r in results
    ]
    widths = [max(len(str(row[i])) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS) - 1)]
    lines = []
    for row in [COLUMNS, *rows]:
        lines.append(
            "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)) + f"  {row[-1]}"
        )
    return "\n".join(line.rstrip() for line in lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fleet",
        fromfile_prefix_chars="@",
        description=(
            "Report the template version of generated projects and whether a newer release exists; "
            "with --update, run `copier update` in each clean one. Never commits, never pushes, "
            "never touches a project with uncommitted changes."
        ),
        epilog="@FILE reads targets from FILE, one per line.",
    )
    p.add_argument("targets", nargs="+", metavar="TARGET", help="a project checkout, or a git URL to clone")
    p.add_argument("--update", action="store_true", help="run `copier update` (template migrations included)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path("build/fleet"),
        help="where projects given by URL are cloned (default: build/fleet)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    results = [inspect(target, args.workdir.resolve(), args.update) for target in args.targets]
    print(json.dumps([r.to_dict() for r in results], indent=2) if args.json else table(results))
    return 1 if any(r.status == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
