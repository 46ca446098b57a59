"""Manifests as `podnet apply -f` and `delete -f` read them: every document of
every file (a directory's .yaml/.yml/.json files, `-` for stdin), parsed before
any is sent, each knowing where it came from, so an error names file and document."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podnet.api.apply import Origin
from podnet.errors import ManifestError
from podnet.model.manifest import Resource, check_type, load_yaml_documents, parse_resource, read_text
from podnet.model.origin import document_of

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "STDIN"  # how errors name `-f -`, as kubectl's do


@dataclass(frozen=True)
class Manifest:
    resource: Resource  # parsed, with the namespace given filled in
    origin: Origin

    @property
    def document(self) -> dict[str, Any]:
        """What is sent: the manifest as written, as kubectl sends it (the server
        parses and defaults it); a kind read as the one that replaced it (v1alpha1
        AdminNetworkPolicy) as that kind's document."""
        origin = self.resource.origin
        return origin.document if origin is not None else document_of(self.resource)


def read_manifests(sources: tuple[str, ...], namespace: str | None) -> list[Manifest]:
    found = []
    for source in sources:
        paths = [source] if source == "-" or not Path(source).is_dir() else \
            sorted(str(p) for p in Path(source).iterdir() if p.suffix in MANIFEST_SUFFIXES)
        for path in paths:
            text = sys.stdin.read() if path == "-" else read_text(path, "manifest")
            name = STDIN if path == "-" else path
            for i, document in enumerate(load_yaml_documents(text, name)):
                if namespace and isinstance(document, dict) and isinstance(document.get("metadata"), dict):
                    document["metadata"].setdefault("namespace", namespace)
                try:
                    check_type(document)  # apiVersion and kind name a served type, as kubectl's REST mapping asks
                    resource = parse_resource(document)
                except ManifestError as err:
                    raise ManifestError(f"document {i + 1}: {err.field}", err.problem, name) from None
                found.append(Manifest(resource, (name, i + 1)))
    return found
