"""Refresh the custom-resource schemas the template ships (template/deploy/schemas) from the CRDs catalog.

    python scripts/refresh_schemas.py --commit SHA [--from CATALOG_CHECKOUT] [--add GROUP/KIND_VERSION.json]

The files keep their names in the template, copier conditions included (a KServe
schema ships only with KServe projects); the generated projects' own
`manifests schemas` command is the same module, run on a project's deploy/schemas.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "template" / "deploy" / "schemas"
MODULE = ROOT / "runtime" / "src" / "mlops_runtime" / "release" / "schemas.py"
# A copier condition in a path part, e.g. "{% if enable_monitoring %}monitoring.coreos.com{% endif %}".
CONDITION = re.compile(r"\{%.*?%\}")


def load_module():
    spec = importlib.util.spec_from_file_location("project_schemas", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shipped(folder: Path) -> dict[str, Path]:
    """Catalog path -> the template's file for it, for every schema the template ships."""
    found = {}
    for path in folder.rglob("*"):
        catalog_path = "/".join(CONDITION.sub("", part) for part in path.relative_to(folder).parts)
        if path.is_file() and catalog_path.endswith(".json.gz"):
            found[catalog_path[: -len(".gz")]] = path
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", required=True, help="full commit of the CRDs catalog to take the schemas from")
    parser.add_argument("--from", dest="source", help="a local checkout of the catalog (default: download)")
    parser.add_argument("--add", action="append", default=[], help="also vendor this catalog path (unconditional)")
    args = parser.parse_args(argv)
    schemas = load_module()
    try:
        written = schemas.refresh(FOLDER, args.commit, source=args.source, add=args.add, targets=shipped(FOLDER))
    except schemas.SchemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(written)} schemas from {schemas.CATALOG_URL} at {args.commit}:\n  " + "\n  ".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
