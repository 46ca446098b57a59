"""Turning manifest documents (YAML or stored JSON) into resources and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from podnet.errors import ManifestError
from podnet.model import kinds
from podnet.model.clusternetworkpolicy import AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy
from podnet.model.deployment import Deployment
from podnet.model.endpointslice import EndpointSlice
from podnet.model.event import Event
from podnet.model.fields import Fields
from podnet.model.lease import Lease
from podnet.model.namespace import Namespace
from podnet.model.networkpolicy import NetworkPolicy
from podnet.model.node import Node
from podnet.model.origin import remember
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.model.stored import ConfigMap, Secret, ServiceAccount

Resource = Union[Namespace, Node, Pod, Service, Deployment, EndpointSlice, Lease, Event, NetworkPolicy,
                 ClusterNetworkPolicy, ConfigMap, Secret, ServiceAccount]


TRANSLATED = {  # v1alpha1 kinds, read as the kind that replaced them
    "AdminNetworkPolicy": AdminNetworkPolicy.parse,
    "BaselineAdminNetworkPolicy": BaselineAdminNetworkPolicy.parse,
}


TRANSLATED_VERSION = "policy.networking.k8s.io/v1alpha1"  # what the translated kinds were written in


def check_type(document: object, path: str = "") -> None:
    """A manifest's apiVersion and kind name a served type, as kube-apiserver's
    REST mapping requires (`no matches for kind "Deployment" in version "apps/v2"`):
    written manifests are checked so; stored objects and requests carry theirs."""
    fields = Fields(document, path)
    kind = fields.text("kind", required=True) or ""
    version = fields.text("apiVersion", required=True) or ""
    registered = kinds.named(kind)
    expected = TRANSLATED_VERSION if kind in TRANSLATED else registered.group_version if registered else None
    if expected is not None and version != expected:
        raise ManifestError(fields.at("apiVersion"), f'no matches for kind "{kind}" in version "{version}"')


def parse_resource(document: object, path: str = "") -> Resource:
    fields = Fields(document, path)
    kind = fields.text("kind", required=True)
    if kind in TRANSLATED:  # read as the kind that replaced it
        return TRANSLATED[kind](fields)  # not as written: its document is of another kind
    registered = kinds.named(kind or "")
    if registered is None:
        raise ManifestError(fields.at("kind"), f"unsupported kind {kind!r} (supported: {', '.join(kinds.names())})")
    try:
        return remember(registered.cls.parse(fields), document)  # type: ignore[no-any-return]
    except ManifestError as err:
        if path or not err.field.startswith(("metadata", "spec", "status")):
            raise
        raise ManifestError(f"{kind} {err.field}", err.problem) from None


def read_text(path: str, what: str) -> str:
    """A manifest or lab file as text; unreadable or not UTF-8 is a ManifestError naming it."""
    try:
        return Path(path).read_text()
    except OSError as err:
        raise ManifestError("", f"cannot read {what}: {err.strerror}", path) from None
    except UnicodeDecodeError as err:
        raise ManifestError("", f"not UTF-8 text: byte {err.object[err.start]:#04x} at offset {err.start}",
                            path) from None


def load_yaml_documents(text: str, source: str) -> list[Any]:
    """All documents of a YAML stream; a syntax error names the line. YAML is
    imported here: reading the store (`podnet get`, the agents) does without it."""
    import yaml

    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ManifestError(where, f"malformed YAML: {problem}", source) from None

