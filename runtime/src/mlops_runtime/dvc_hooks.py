"""DVC's post-checkout git hook as this project runs it: after `git switch`, the data the commit records.

`dvc git-hook post-checkout` fails the switch (exit 1) whenever a stage output has
no recorded version, which is every output of dvc.yaml on a branch whose dvc.lock
does not hold it yet (a new project, a new stage). Here, such outputs are left as
they are (DVC would not create them either), and only data the commit records
but the DVC cache lacks is an error, named with the command that fetches it.
Runs from .pre-commit-config.yaml as `python -m <package>.dvc_hooks post-checkout`.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


class _NotRecordedYet(logging.Filter):
    """Drops DVC's warning for each output without a recorded version: this hook names the ones left in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No file hash info found" not in record.getMessage()


def one_line(exc: BaseException) -> str:
    """DVC's message on one line, with where a YAML cause went wrong (a corrupt dvc.lock: its line)."""
    text = str(exc)
    cause = exc.__cause__
    problem, mark = getattr(cause, "problem", None), getattr(cause, "problem_mark", None)
    if problem and mark is not None:
        text += f": {problem} at line {mark.line + 1}"
    elif cause is not None:
        text += f": {cause}"
    text = " ".join(text.split())
    return f"{text}. Restore the file (git checkout -- <file>) or fix it, then run `dvc checkout`"


def branch_checkout(args: list[str]) -> bool:
    """Whether git switched to a branch or commit (not files), outside a rebase: the only case to act on.

    pre-commit passes the checkout type in PRE_COMMIT_CHECKOUT_TYPE, git as the third argument.
    """
    flag = os.environ.get("PRE_COMMIT_CHECKOUT_TYPE")
    if flag is None and len(args) >= 3:
        flag = args[2]
    # A failed checkout in the middle of a rebase would break it.
    return flag == "1" and not Path(".git", "rebase-merge").is_dir()


def post_checkout(args: list[str]) -> int:
    """Check out what the commit records; 0 unless recorded data is missing from the cache or DVC fails."""
    if not branch_checkout(args):
        return 0
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo

    logging.getLogger("dvc_data.index.checkout").addFilter(_NotRecordedYet())
    try:
        repo = Repo()
    except NotDvcRepoError:
        return 0
    with repo:
        try:
            # dvc.yaml and dvc.lock are read here: a corrupt one is DvcException, named in one line.
            outputs = [out for stage in repo.index.stages for out in stage.outs if out.use_cache]
            # allow_missing: what the cache lacks is found below and named, instead of DVC's bare list.
            changes = repo.checkout(allow_missing=True)
        except DvcException as exc:
            print(f"DVC checkout skipped, the data is left as it was: {one_line(exc)}", file=sys.stderr)
            return 1
        missing = [str(out) for out in outputs if out.hash_info and not out.exists]
        unrecorded = [str(out) for out in outputs if not out.hash_info and out.exists]
    counts = {kind: len(changes.get(kind, [])) for kind in ("added", "modified", "deleted")}
    if any(counts.values()):
        print("DVC checkout: " + ", ".join(f"{count} {kind}" for kind, count in counts.items()))
    if unrecorded:
        print(
            f"DVC checkout: left as they are, with no version recorded on this commit: {', '.join(unrecorded)} "
            "(`make pipeline` rebuilds them)"
        )
    if missing:
        print(
            f"DVC checkout: this commit records data the DVC cache does not hold: {', '.join(missing)}. "
            "Fetch it with `dvc pull` (from the DVC remote), or rebuild pipeline outputs with `make pipeline`.",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "post-checkout":
        print("usage: python -m <package>.dvc_hooks post-checkout [GIT-HOOK-ARGS ...]", file=sys.stderr)
        return 2
    return post_checkout(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
