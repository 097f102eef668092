"""What an environment serves as kustomize renders it (image, model, version, storage), against its pin.

The pin is the only place a model is chosen; an overlay's `images:`, `patches:` or a
change in base/components that serves something else must not pass the gate.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .pin import UNPINNED, Pin

# Where components/pinned-model copies the pin: container env names and labels/annotations -> pin field.
PINNED_ENV = {"MODEL_URI": "storageUri", "MODEL_VERSION": "version", "MODEL_NAME": "model"}
PINNED_METADATA = {"model.mlops/version": "version", "model.mlops/name": "model"}
# KServe reads a model's files from these too; the project sets storageUri alone.
OTHER_STORAGE = ("storageUris", "storage")
# The serve command's own model location: the KServe storage initializer's folder, or the pinned env value.
SERVE_MODEL_URIS = ("/mnt/models", "$(MODEL_URI)")
KSERVE_STOP = "serving.kserve.io/stop"
SERVER_LABEL = ("app.kubernetes.io/component", "model-server")


def expected(pin: Pin) -> dict[str, str]:
    """The values the pin puts into the rendered objects ("none" while unpinned)."""
    return {
        "image": pin.image or UNPINNED,
        "storageUri": pin.storage_uri or UNPINNED,
        "version": pin.version or UNPINNED,
        "model": pin.model,
    }


def _walk(node: Any, path: str, kserve: bool) -> Iterator[tuple[str, str, Any]]:
    """(field path, pin field, rendered value) for every place an object says what it serves."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, f"{path}[{index}]", kserve)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        here = f"{path}.{key}" if path else str(key)
        if key in ("image", "storageUri"):
            yield here, key, value
        elif kserve and key in OTHER_STORAGE:
            yield here, "storageUri", value
        elif key in ("labels", "annotations") and isinstance(value, dict):
            for name, field in PINNED_METADATA.items():
                if name in value:
                    yield f"{here}.[{name}]", field, value[name]
        elif key == "env" and isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and item.get("name") in PINNED_ENV:
                    # A value from elsewhere (valueFrom) is not the pin's either: None never matches.
                    yield f"{here}.[name={item['name']}]", PINNED_ENV[item["name"]], item.get("value")
        elif key in ("command", "args") and isinstance(value, list):
            words = [str(word) for word in value]
            for index, word in enumerate(words):
                if word == "--model-uri" and index + 1 < len(words):
                    yield f"{here} --model-uri", "serve --model-uri", words[index + 1]
                elif word.startswith("--model-uri="):
                    yield f"{here} --model-uri", "serve --model-uri", word.split("=", 1)[1]
        if isinstance(value, dict | list):
            yield from _walk(value, here, kserve)


def _serving(doc: dict[str, Any]) -> bool | None:
    """Whether the object runs the model server's pods; None for objects without that switch."""
    metadata, spec = doc.get("metadata") or {}, doc.get("spec") or {}
    if doc.get("kind") == "InferenceService":
        return (metadata.get("annotations") or {}).get(KSERVE_STOP) == "false"
    labels = (((spec.get("template") or {}).get("metadata") or {}).get("labels")) or {}
    if doc.get("kind") == "Deployment" and labels.get(SERVER_LABEL[0]) == SERVER_LABEL[1]:
        return spec.get("replicas", 1) != 0
    return None


def problems(docs: list[dict[str, Any]], pin: Pin) -> list[str]:
    """Every rendered value that is not the pin's; empty when the environment serves exactly its pin."""
    wanted = expected(pin)
    found: list[str] = []
    locations = 0
    for doc in docs:
        what = f"{doc.get('kind')} {(doc.get('metadata') or {}).get('name')}"
        for path, field, value in _walk(doc, "", doc.get("kind") == "InferenceService"):
            if field == "serve --model-uri":
                allowed = (*SERVE_MODEL_URIS, wanted["storageUri"])
                if value not in allowed:
                    found.append(f"{what} {path} is {value!r}: the server loads the pinned storageUri only")
                continue
            locations += field == "storageUri"
            if value != wanted[field]:
                found.append(f"{what} {path} is {value!r}, the pin's {field} is {wanted[field]!r}")
        serving = _serving(doc)
        if serving is not None and serving != pin.serving:
            state = "runs" if serving else "stops"
            found.append(f"{what} {state} the model server, the pin says {'serve' if pin.serving else 'stop'}")
    if not locations:
        found.append("no object receives the pin's storageUri: keep components/pinned-model in the overlay")
    return found
