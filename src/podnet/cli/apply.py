"""`podnet apply -f`: what manifests describe, made so through the lab's API and
reported as kubectl reports it (created, configured, unchanged).

All or nothing, as podnet's apply has always been: every document is parsed,
then checked against the objects as the API serves them (api/apply.check: a
document given twice, a namespace missing or being deleted, an immutable field
changed) before the first write. Then each is created (POST), or replaced (PUT
at the resourceVersion read, so that a write in between is a Conflict: read
again, and retried); the server merges the manifest onto what the cluster
decided (api/verbs.replace), as the store path did. The check and the writes
are not one transaction: what changes in between is refused by the server,
document by document, as kubectl's apply refuses it.
"""

from __future__ import annotations

from typing import Any

import click

from podnet.api.apply import check
from podnet.apiserver.client import ApiClient, ServerError
from podnet.cli.manifests import Manifest, read_manifests
from podnet.cli.words import resource_word, scope
from podnet.lab.client import cluster_api
from podnet.model import kinds
from podnet.model.kinds import Kind
from podnet.model.manifest import Resource, parse_resource
from podnet.model.namespace import Namespace

RETRIES = 10  # replacing an object a controller keeps writing (a Deployment's status) may meet a Conflict or two


@click.command()
@click.option("-f", "--filename", "sources", multiple=True, required=True, help="A manifest file, a directory, or -.")
@click.option("-n", "--namespace", help="For documents that name none.")
@click.option("--lab", "lab_name", help="The lab, when several are up.")
def apply(sources: tuple[str, ...], namespace: str | None, lab_name: str | None) -> None:
    """Create or update what the manifests describe (Namespaces, Pods,
    Deployments, Services, ...); nothing is applied if any document is wrong."""
    manifests = read_manifests(sources, namespace)
    with cluster_api(lab_name) as api:
        live = LiveObjects(api)
        check(live.lookup, [m.resource for m in manifests], [m.origin for m in manifests])
        for manifest in sorted(manifests, key=lambda m: not isinstance(m.resource, Namespace)):
            kind = kinds.of(type(manifest.resource))
            action = _apply_one(api, live, kind, manifest)
            click.echo(f"{resource_word(kind)}/{manifest.resource.metadata.name} {action}")


class LiveObjects:
    """The objects as the API serves them, each asked for once: the check and
    the first write read the same."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self.found: dict[tuple[str, str, str], dict[str, Any] | None] = {}

    def document(self, kind: Kind, namespace: str, name: str, again: bool = False) -> dict[str, Any] | None:
        key = (kind.name, namespace if kind.namespaced else "", name)
        if again or key not in self.found:
            try:
                self.found[key] = self.api.get(kind, scope(kind, namespace), name)
            except ServerError as err:
                if err.code != 404:
                    raise
                self.found[key] = None
        return self.found[key]

    def lookup(self, kind: str, namespace: str, name: str) -> Resource | None:
        registered = kinds.named(kind)
        assert registered is not None, kind
        document = self.document(registered, namespace, name)
        return None if document is None else parse_resource(document)


def _apply_one(api: ApiClient, live: LiveObjects, kind: Kind, manifest: Manifest) -> str:
    meta = manifest.resource.metadata
    namespace = scope(kind, meta.namespace)
    document = manifest.document
    current = live.document(kind, meta.namespace, meta.name)
    attempts = 0
    while True:
        try:
            if current is None:
                api.create(kind, namespace, document)
                return "created"
            version = current["metadata"]["resourceVersion"]
            written = api.replace(kind, namespace, meta.name,
                                  {**document, "metadata": {**document["metadata"], "resourceVersion": version}})
            return "unchanged" if written["metadata"]["resourceVersion"] == version else "configured"
        except ServerError as err:
            attempts += 1
            if err.reason not in ("AlreadyExists", "Conflict") or attempts == RETRIES:
                raise _naming_the_file(err, "creating" if current is None else "applying", manifest) from None
            current = live.document(kind, meta.namespace, meta.name, again=True)


def _naming_the_file(err: ServerError, doing: str, manifest: Manifest) -> ServerError:
    """kubectl's words for a write refused: `error when creating "shop.yaml": ...`
    (an invalid object names itself already)."""
    if err.reason == "Invalid":
        return err
    return ServerError({**err.status, "message": f'error when {doing} "{manifest.origin[0]}": {err}'})
