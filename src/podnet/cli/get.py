"""`podnet get KIND [NAME] [-w]`: kubectl-style listings of a cluster lab, and watching them."""

from __future__ import annotations

import json
import sys
import time

import click

from podnet.api.writes import NotFound
from podnet.cli.columns import echo_row, print_table
from podnet.cli import tables
from podnet.lab.client import cluster_store
from podnet.model import kinds
from podnet.model.manifest import Resource
from podnet.model.origin import document_of
from podnet.model.endpointslice import EndpointSlice
from podnet.model.pod import Pod
from podnet.store import resources
from podnet.store.base import Compacted, Store
from podnet.store.resources import REGISTRY

WATCH_POLL = 0.2  # seconds between looks at the store while watching


@click.command()
@click.argument("kind")
@click.argument("name", required=False)
@click.option("--lab", "lab_name", help="The lab to read, when several are up.")
@click.option("-n", "--namespace", default="default", show_default=True, help="The Kubernetes namespace.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace (as kubectl's -A).")
@click.option("-o", "--output", default="table", help="table, wide, json, yaml, name or jsonpath=TEMPLATE.")
@click.option("-w", "--watch", is_flag=True, help="After the listing, print each object again as it changes.")
def get(kind: str, name: str | None, lab_name: str | None, namespace: str, all_namespaces: bool,
        output: str, watch: bool) -> None:
    """List any kind of a cluster lab, as kubectl does: one namespace (default
    unless -n), or all of them with -A; -w then follows the changes."""
    registered = kinds.from_word(kind)
    if registered is None:
        raise click.BadParameter(f"{kind!r} is not one of {', '.join(k.plural for k in kinds.KINDS)}", param_hint="KIND")
    if output not in ("table", "wide", "json", "yaml", "name") and not output.startswith("jsonpath="):
        raise click.BadParameter(f"{output!r} is not table, wide, json, yaml, name or jsonpath=...", param_hint="-o")
    listing = Listing(registered, None if all_namespaces or not registered.namespaced else namespace, name)
    with cluster_store(lab_name) as store:
        chosen, revision = listing.read(store)
        if name and not chosen:
            raise NotFound(registered.name, name)
        if output in ("table", "wide"):
            widths = print_table(listing.columns, listing.rows(chosen))
        else:
            _print_documents(registered.name, chosen, output, whole=not watch and not name)
        if watch:
            _watch(store, listing, chosen, revision, output, widths if output in ("table", "wide") else [])


class Listing:
    """What one `get` shows: a kind's objects, narrowed to a namespace and a name,
    and its table's rows (some kinds' rows need the pods or the slices too)."""

    def __init__(self, kind: kinds.Kind, namespace: str | None, name: str | None) -> None:
        self.kind, self.namespace, self.name = kind, namespace, name
        self.context: dict[type, list[Resource]] = {}
        self.columns, self._rows = {
            "Namespace": (tables.NAMESPACE_COLUMNS, lambda chosen: tables.namespace_rows(chosen)),
            "Node": (tables.NODE_COLUMNS, lambda chosen: tables.node_rows(chosen)),
            "Pod": (tables.POD_COLUMNS, lambda chosen: tables.pod_rows(chosen)),
            "Service": (tables.SERVICE_COLUMNS, lambda chosen: tables.service_rows(chosen, self.context[EndpointSlice])),
            "Deployment": (tables.DEPLOYMENT_COLUMNS, lambda chosen: tables.deployment_rows(chosen, self.context[Pod])),
            "EndpointSlice": (tables.ENDPOINTSLICE_COLUMNS, lambda chosen: tables.endpointslice_rows(chosen)),
            "Lease": (tables.LEASE_COLUMNS, lambda chosen: tables.lease_rows(chosen, time.time())),
            "Event": (tables.EVENT_COLUMNS, lambda chosen: tables.event_rows(chosen, time.time())),
            "NetworkPolicy": (tables.NETWORKPOLICY_COLUMNS, lambda chosen: tables.networkpolicy_rows(chosen)),
            "ClusterNetworkPolicy": (tables.CLUSTERNETWORKPOLICY_COLUMNS,
                                     lambda chosen: tables.clusternetworkpolicy_rows(chosen)),
        }[kind.name]
        self.needs = {"Service": (EndpointSlice,), "Deployment": (Pod,)}.get(kind.name, ())

    def read(self, store: Store) -> tuple[list[Resource], int]:
        chosen, revision = resources.list_kind(store, self.kind.cls)
        self.read_context(store)
        return [r for r in chosen if self.wants(r)], revision

    def read_context(self, store: Store) -> None:
        """What the rows count besides the objects themselves: a Service's slices, a Deployment's pods."""
        for cls in self.needs:
            self.context[cls] = resources.list_kind(store, cls)[0]

    def wants(self, resource: Resource) -> bool:
        return (self.namespace is None or resource.metadata.namespace == self.namespace) \
            and (self.name is None or resource.metadata.name == self.name)

    def rows(self, chosen: list[Resource]) -> list[tuple[str, ...]]:
        return self._rows(chosen)  # type: ignore[no-any-return]


def _print_documents(kind: str, chosen: list[Resource], output: str, whole: bool) -> None:
    """Several objects make a List, as kubectl prints them; one (or each, when
    watching) stands alone. YAML and jsonpath are imported only when asked for:
    a table is most of what `get` prints."""
    manifests = [document_of(r) for r in chosen]
    documents = [{"apiVersion": "v1", "kind": "List", "items": manifests}] if whole else manifests
    for document in documents:
        if output == "json":
            click.echo(json.dumps(document, indent=2))
        elif output == "yaml":
            import yaml

            click.echo(("---\n" if not whole else "") + yaml.safe_dump(document, sort_keys=False), nl=False)
        elif output.startswith("jsonpath="):
            from podnet.cli.jsonpath import jsonpath

            click.echo(jsonpath(document, output[len("jsonpath="):]), nl=False)
    if output == "name":
        click.echo("\n".join(f"{kind.lower()}/{r.metadata.name}" for r in chosen))
    sys.stdout.flush()


def _watch(store: Store, listing: Listing, chosen: list[Resource], revision: int, output: str,
           widths: list[int]) -> None:
    """Until interrupted: every version of every object the listing shows, as
    the store's events give them (a deleted one is printed once more as it was
    last). Kinds whose rows count other objects (a Deployment's pods, a Service's
    endpoints) are printed again when those change too."""
    shown = _shown(listing, chosen, output)
    last = {r.metadata.key: r for r in chosen}
    kind_prefix = resources.prefix(listing.kind.name)
    context_prefixes = tuple(resources.prefix(kinds.of(cls).name) for cls in listing.needs)

    def emit(resource: Resource, again: bool = False) -> None:
        view = _shown(listing, [resource], output)[resource.metadata.key]
        if shown.get(resource.metadata.key) == view and not again:
            return
        shown[resource.metadata.key] = view
        if widths:
            echo_row(view, widths)  # type: ignore[arg-type]
        else:
            _print_documents(listing.kind.name, [resource], output, whole=False)

    try:
        while True:
            time.sleep(WATCH_POLL)
            try:
                happened = store.events_since(REGISTRY, revision)
            except Compacted:  # too far behind for every version: the latest will do
                happened, revision = [], store.revision()
            if not happened:
                continue
            revision = happened[-1].revision
            if context_prefixes:
                listing.read_context(store)  # as of now
            for event in happened:
                if event.key.startswith(kind_prefix):
                    resource = resources.decode(event)
                    if resource is None:
                        rest = event.key[len(kind_prefix):]
                        gone = last.pop(rest if "/" in rest else f"/{rest}", None)
                        if gone is not None:
                            emit(gone, again=True)
                    elif listing.wants(resource):
                        last[resource.metadata.key] = resource
                        emit(resource)
                elif event.key.startswith(context_prefixes or ("\0",)):
                    for resource in list(last.values()):
                        emit(resource)
    except KeyboardInterrupt:
        pass


def _shown(listing: Listing, chosen: list[Resource], output: str) -> dict[str, object]:
    """What was printed of each object: its row, or its manifest."""
    if output in ("table", "wide"):
        return dict(zip((r.metadata.key for r in chosen), listing.rows(chosen)))
    return {r.metadata.key: document_of(r) for r in chosen}
