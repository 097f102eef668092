"""The custom-resource JSON schemas that `manifests validate` checks against, vendored in deploy/schemas.

The files come from the public CRDs catalog (datreeio/CRDs-catalog) at the commit
recorded in deploy/schemas/catalog.json, laid out as that catalog lays them out
(<group>/<kind>_<version>.json), minified and gzipped. Validation therefore needs
no network; `manifests schemas --commit SHA` refreshes them for people who have it.

Standard library only: the template repository runs this same module to refresh
the schemas it ships.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CATALOG_FILE = "catalog.json"
CATALOG_URL = "https://github.com/datreeio/CRDs-catalog"
# Where one schema of the catalog is downloaded from; {commit} and {path} are filled in.
RAW_URL = "https://raw.githubusercontent.com/datreeio/CRDs-catalog/{commit}/{path}"
COMMIT = re.compile(r"[0-9a-f]{40}")
# <group>/<kind>_<version>.json, as the catalog names its files.
SCHEMA_PATH = re.compile(r"[a-z0-9.-]+/[a-z0-9]+_v[0-9a-z]+\.json")
DOWNLOAD_TIMEOUT_SECONDS = 30
GZIP_MAGIC = b"\x1f\x8b"


class SchemaError(ValueError):
    """A schema is missing, unreadable, or the catalog could not be read; the message says how to fix it."""


def schema_file(folder: Path, group: str, kind: str, version: str) -> Path | None:
    """The schema of group/version kind in `folder`: plain (a catalog checkout) or vendored (.json.gz)."""
    stem = folder / group / f"{kind.lower()}_{version}"
    for candidate in (stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".json.gz")):
        if candidate.is_file():
            return candidate
    return None


def load(path: Path) -> Any:
    """The JSON schema in `path` (.json or .json.gz)."""
    try:
        raw = path.read_bytes()
        return json.loads(gzip.decompress(raw) if raw[:2] == GZIP_MAGIC else raw)
    except (OSError, EOFError, gzip.BadGzipFile, json.JSONDecodeError) as exc:
        raise SchemaError(f"schema {path} is unreadable ({exc}): refresh it with `manifests schemas`") from exc


def compact(schema: Any) -> bytes:
    """The schema as it is vendored: minified JSON, gzipped reproducibly (no name, no time stamp)."""
    text = json.dumps(schema, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")
    return gzip.compress(text, compresslevel=9, mtime=0)


def vendored(folder: Path) -> list[str]:
    """Catalog paths (<group>/<kind>_<version>.json) of the schemas vendored in `folder`."""
    return sorted(p.relative_to(folder).as_posix()[: -len(".gz")] for p in folder.glob("*/*.json.gz"))


def read_record(folder: Path) -> dict[str, Any]:
    path = folder / CATALOG_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path} is missing or not JSON ({exc}): it records the catalog commit") from exc


def fetch(path: str, commit: str, source: str | None) -> Any:
    """One schema of the catalog at `commit`: from a local checkout `source`, else downloaded."""
    if source and not source.startswith(("https://", "http://")):
        local = Path(source) / path
        if not local.is_file():
            raise SchemaError(f"{local} does not exist: is {source} a checkout of the CRDs catalog at {commit}?")
        return load(local)
    url = (source.rstrip("/") + "/" + path) if source else RAW_URL.format(commit=commit, path=path)
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:  # noqa: S310 (https only)
            return json.loads(response.read())
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise SchemaError(f"cannot download {url} ({exc}): check the commit, or pass --from a local checkout") from exc
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{url} is not JSON: is {path} a schema of the catalog at {commit}?") from exc


def refresh(
    folder: Path,
    commit: str,
    *,
    source: str | None = None,
    add: Iterable[str] = (),
    targets: dict[str, Path] | None = None,
) -> list[str]:
    """Replace the vendored schemas (and any in `add`) by the catalog's at `commit`; the list of paths written.

    All schemas are read before any file is replaced, so a failed download changes
    nothing. `targets` maps a catalog path to the file to write, where the folder's
    own file names differ from the catalog's (the template's conditional names).
    """
    if not COMMIT.fullmatch(commit):
        raise SchemaError(f"--commit {commit!r} is not a full 40-character commit of {CATALOG_URL}")
    wanted = dict(targets or {p: folder / f"{p}.gz" for p in vendored(folder)})
    for path in add:
        if not SCHEMA_PATH.fullmatch(path):
            raise SchemaError(f"--add {path!r}: give a catalog path such as argoproj.io/workflow_v1alpha1.json")
        wanted.setdefault(path, folder / f"{path}.gz")
    if not wanted:
        raise SchemaError(f"no schemas in {folder} to refresh: name them with --add <group>/<kind>_<version>.json")
    fetched = {path: compact(fetch(path, commit, source)) for path in sorted(wanted)}
    record = read_record(folder) if (folder / CATALOG_FILE).is_file() else {"catalog": CATALOG_URL}
    record["commit"] = commit
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".schemas-") as tmp:
        staged = []
        for path, data in fetched.items():
            temporary = Path(tmp) / path.replace("/", "__")
            temporary.write_bytes(data)
            staged.append((temporary, wanted[path]))
        for temporary, destination in staged:
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, destination)
    (folder / CATALOG_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return sorted(fetched)
