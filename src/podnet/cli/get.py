"""`podnet get nodes|pods|services`: kubectl-style listings of a cluster lab."""

from __future__ import annotations

import json

import click
import yaml
from rich.console import Console
from rich.table import Table

from podnet.cli.jsonpath import jsonpath
from podnet.cli import tables
from podnet.errors import LabError
from podnet.lab import state
from podnet.lab.state import LabRecord
from podnet.model import kinds
from podnet.model.manifest import Resource
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.store import resources
from podnet.store.location import open_store



def read_cluster(record: LabRecord) -> tuple[list[Node], list[Pod], list[Service]]:
    store = open_store(record.store)
    try:
        return (resources.list_kind(store, Node)[0], resources.list_kind(store, Pod)[0],
                resources.list_kind(store, Service)[0])
    finally:
        store.close()


def cluster_record(lab_name: str | None) -> LabRecord:
    clusters = [r for r in state.running() if r.kind == "Cluster" and (lab_name is None or r.name == lab_name)]
    if not clusters:
        raise LabError(f"no cluster lab named {lab_name} is up" if lab_name else "no cluster lab is up")
    if len(clusters) > 1:
        raise LabError(f"several cluster labs are up ({', '.join(r.name for r in clusters)}); choose one with --lab")
    return clusters[0]


@click.command()
@click.argument("kind")
@click.argument("name", required=False)
@click.option("--lab", "lab_name", help="The lab to read, when several are up.")
@click.option("-n", "--namespace", default="default", show_default=True, help="The Kubernetes namespace.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace (as kubectl's -A).")
@click.option("-o", "--output", default="table", help="table, wide, json, yaml, name or jsonpath=TEMPLATE.")
def get(kind: str, name: str | None, lab_name: str | None, namespace: str, all_namespaces: bool,
        output: str) -> None:
    """List nodes, pods or services of a cluster lab, as kubectl does: one
    namespace (default unless -n), or all of them with -A."""
    registered = kinds.from_word(kind)
    if registered is None:
        raise click.BadParameter(f"{kind!r} is not one of {', '.join(k.plural for k in kinds.KINDS)}", param_hint="KIND")
    wanted = registered.name
    store = open_store(cluster_record(lab_name).store)
    try:
        chosen: list[Resource] = resources.list_kind(store, registered.cls)[0]
        pods = resources.list_kind(store, Pod)[0] if wanted in ("Service", "Deployment") else []
    finally:
        store.close()
    if registered.namespaced and not all_namespaces:
        chosen = [r for r in chosen if r.metadata.namespace == namespace]
    if name:
        chosen = [r for r in chosen if r.metadata.name == name]
        if not chosen:
            where = f" in namespace {namespace!r} (-A for all)" if registered.namespaced and not all_namespaces else ""
            raise LabError(f"{wanted.lower()} {name!r} not found{where}")
    manifests = [r.to_manifest() for r in chosen]
    document = manifests[0] if name else {"apiVersion": "v1", "kind": "List", "items": manifests}
    if output == "json":
        click.echo(json.dumps(document, indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump(document, sort_keys=False))
    elif output == "name":
        click.echo("\n".join(f"{wanted.lower()}/{r.metadata.name}" for r in chosen))
    elif output.startswith("jsonpath="):
        click.echo(jsonpath(document, output[len("jsonpath="):]), nl=False)
    elif output in ("table", "wide"):
        columns, rows = {
            "Namespace": (tables.NAMESPACE_COLUMNS, lambda: tables.namespace_rows(chosen)),  # type: ignore[arg-type]
            "Node": (tables.NODE_COLUMNS, lambda: tables.node_rows(chosen)),  # type: ignore[arg-type]
            "Pod": (tables.POD_COLUMNS, lambda: tables.pod_rows(chosen)),  # type: ignore[arg-type]
            "Service": (tables.SERVICE_COLUMNS, lambda: tables.service_rows(chosen, pods)),  # type: ignore[arg-type]
            "Deployment": (tables.DEPLOYMENT_COLUMNS, lambda: tables.deployment_rows(chosen, pods)),  # type: ignore[arg-type]
        }[wanted]
        table = Table(box=None, header_style="bold")
        for column in columns:
            table.add_column(column)
        for row in rows():
            table.add_row(*row)
        Console().print(table)
    else:
        raise click.BadParameter(f"{output!r} is not table, wide, json, yaml, name or jsonpath=...", param_hint="-o")
