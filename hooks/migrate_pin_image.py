"""Update migration to 0.3.0: a pinned environment's model pin names the image of its version.

From 0.3.0 each overlay's deploy/overlays/<env>/model.yaml carries `spec.image`,
the project image tagged with the commit that trained the pinned model, and every
workload of the overlay runs it; with monitoring, `spec.suspendDrift` holds the
drift job while nothing is pinned. The new release adds those lines as
`image: "none"` (and `suspendDrift: true`) at the top of `spec`, away from the
lines a promotion changes, so the merge is clean. Copier runs this afterwards: in
a pin that has a version it writes that version's image (and releases the drift
job), so the environment keeps serving. Safe to rerun: a pin whose image is set
is left alone. A pin it cannot set (a version without a git commit, a params.yaml
in conflict) is named with what to do.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import yaml

PARAMS = Path("params.yaml")
# The runtime's lineage.py, as this template release ships it: the one definition of the lineage
# annotations and of a commit id. It imports only the standard library and yaml.
LINEAGE_SOURCE = Path(__file__).resolve().parents[1] / "runtime" / "src" / "mlops_runtime" / "lineage.py"


def _load_lineage() -> ModuleType:
    spec = importlib.util.spec_from_file_location("template_lineage", LINEAGE_SOURCE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {LINEAGE_SOURCE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lineage = _load_lineage()


class CannotMigrate(Exception):
    """A pin is in a shape this migration does not rewrite; the message says what to do."""


def migrate(text: str, path: Path, image_name: str) -> str:
    """`text` of one pin with its version's image; the same text when there is nothing to do."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CannotMigrate(f"{path} is not valid YAML ({exc}): fix it, then set spec.image by hand") from None
    spec = doc.get("spec") if isinstance(doc, dict) else None
    if not isinstance(spec, dict) or str(spec.get("version") or "none") == "none":
        return text
    if str(spec.get("image") or "none") != "none":
        return text
    annotations = (doc.get("metadata") or {}).get("annotations") or {}
    commit = str(annotations.get(lineage.annotation(lineage.COMMIT_TAG)) or "none")
    if not lineage.is_commit_id(commit):
        raise CannotMigrate(
            f"{path} pins version {spec['version']} without a git commit ({commit!r}), so no image matches it: "
            "promote a version trained from a commit"
        )
    image = f"{image_name}:{commit}"
    migrated, found = re.subn(r'(?m)^  image: "none"$', f'  image: "{image}"', text, count=1)
    if not found:
        raise CannotMigrate(f'{path}: no line `  image: "none"` in spec: set spec.image to "{image}" by hand')
    migrated = re.sub(r"(?m)^  suspendDrift: true$", "  suspendDrift: false", migrated, count=1)
    expected = {**spec, "image": image, **({"suspendDrift": False} if "suspendDrift" in spec else {})}
    if yaml.safe_load(migrated).get("spec") != expected:
        raise CannotMigrate(f'{path}: setting the image in place would change other values: set it to "{image}"')
    return migrated


def main() -> int:
    """Set the image of every pinned environment; what it cannot set it names, without failing the update.

    The update has been merged by then: a refusal would only hide that result. A pin
    left without its image fails `make promote-check` (exit 12) until it is set.
    """
    pins = sorted(Path("deploy/overlays").glob("*/model.yaml"))
    try:
        image_name = str(yaml.safe_load(PARAMS.read_text(encoding="utf-8"))["argo"]["image"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        image_name = ""
        unreadable = f"cannot read argo.image in {PARAMS} ({str(exc).splitlines()[0]})"
    for path in pins:
        before = path.read_text(encoding="utf-8")
        try:
            if not image_name:
                if migrate(before, path, "<argo.image>") != before:
                    raise CannotMigrate(f"{unreadable}: set spec.image in {path} to <argo.image>:<its git commit>")
                continue
            after = migrate(before, path, image_name)
        except CannotMigrate as exc:
            print(f"migration to 0.3.0: {exc}", file=sys.stderr)
            continue
        if after != before:
            path.write_text(after, encoding="utf-8")
            print(f"{path}: spec.image set to the image of its version")
    return 0


if __name__ == "__main__":
    sys.exit(main())
