"""`podnet get KIND[,KIND...] [NAME...] [-w]`: a cluster lab's objects as
`kubectl get` prints them. The lab's API server makes the Tables (its columns,
AGE, the wide ones at priority 1); this lays them out as kubectl does, never cut
to a terminal's width; -o json|yaml|name|jsonpath= prints the objects."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click

from podnet.apiserver.client import ApiClient, ServerError
from podnet.apiserver.tables.render import Layout, no_resources_found, table_cells
from podnet.cli.words import kind_and_name, kinds_of, resource_word, scope
from podnet.errors import PodnetError
from podnet.lab.client import cluster_api
from podnet.model.kinds import Kind

TABLE_OUTPUTS = ("", "wide")


@dataclass(frozen=True)
class Request:
    """What a `get` asks for: kinds, each with the names given (none: every
    object), where, and how it is printed."""

    targets: tuple[tuple[Kind, tuple[str, ...]], ...]
    namespace: str | None  # None: every namespace (-A)
    selectors: dict[str, str]
    output: str

    @property
    def single_object(self) -> bool:
        """One object named: -o json and yaml print it alone, not in a List."""
        return len(self.targets) == 1 and len(self.targets[0][1]) == 1

    def scope(self, kind: Kind) -> str | None:
        return scope(kind, self.namespace)


@click.command()
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("--lab", "lab_name", help="The lab to read, when several are up.")
@click.option("-n", "--namespace", default="default", show_default=True, help="The Kubernetes namespace.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace (as kubectl's -A).")
@click.option("-o", "--output", default="", help="wide, json, yaml, name or jsonpath=TEMPLATE.")
@click.option("-l", "--selector", default="", help="A label selector: app=web,tier!=db.")
@click.option("--field-selector", default="", help="A field selector: spec.nodeName=n1.")
@click.option("--show-labels", is_flag=True, help="A LABELS column last.")
@click.option("-L", "--label-columns", multiple=True, help="A column for this label key (repeatable).")
@click.option("-w", "--watch", is_flag=True, help="After the listing, print each object again as it changes.")
def get(kind: str, names: tuple[str, ...], lab_name: str | None, namespace: str, all_namespaces: bool, output: str,
        selector: str, field_selector: str, show_labels: bool, label_columns: tuple[str, ...], watch: bool) -> None:
    """List objects of a cluster lab as kubectl does: one namespace (default
    unless -n), or all of them with -A; pods,svc for several kinds, all for
    pods, services and deployments; KIND/NAME for one object; -w then follows
    the changes."""
    if output == "table":
        output = ""
    if output not in (*TABLE_OUTPUTS, "json", "yaml", "name") and not output.startswith("jsonpath="):
        raise click.BadParameter(f"{output!r} is not table, wide, json, yaml, name or jsonpath=...", param_hint="-o")
    request = Request(_targets(kind, names), None if all_namespaces else namespace,
                      {"label_selector": selector, "field_selector": field_selector}, output)
    if watch and (len(request.targets) > 1 or len(request.targets[0][1]) > 1):
        raise PodnetError("you may only specify a single resource type and at most one name to watch")
    printer = TablePrinter(wide=output == "wide", all_namespaces=all_namespaces, show_labels=show_labels,
                           label_columns=label_columns, with_kind=len(request.targets) > 1)
    with cluster_api(lab_name) as api:
        if output in TABLE_OUTPUTS:
            version = _print_tables(api, request, printer)
            if watch:
                _watch_tables(api, request, printer, version)
        else:
            documents = DocumentPrinter(output)
            version = _print_documents(api, request, documents, whole=not watch)
            if watch:
                _watch_documents(api, request, documents, version)


def _targets(kind: str, names: tuple[str, ...]) -> tuple[tuple[Kind, tuple[str, ...]], ...]:
    """`pods,svc [NAME...]`, or `KIND/NAME...` (each word so, as kubectl asks)."""
    if "/" not in kind:
        return tuple((found, names) for found in kinds_of(kind))
    if any("/" not in word for word in names):
        raise PodnetError("there is no need to specify a resource type as a separate argument when passing "
                          "arguments in resource/name form (e.g. 'podnet get resource/<resource_name>' instead of "
                          "'podnet get resource resource/<resource_name>'")
    grouped: dict[Kind, tuple[str, ...]] = {}
    for word in (kind, *names):
        found, name = kind_and_name(word, None)
        grouped[found] = (*grouped.get(found, ()), name)
    return tuple(grouped.items())


class TablePrinter:
    """Tables as kubectl get lays them out: a header when the columns change, the
    kind before each name when several kinds are listed, a blank line between
    kinds, and the widths kept from one table to the next (a watch's rows)."""

    def __init__(self, wide: bool, all_namespaces: bool, show_labels: bool, label_columns: tuple[str, ...],
                 with_kind: bool) -> None:
        self.wide, self.all_namespaces, self.with_kind = wide, all_namespaces, with_kind
        self.show_labels, self.label_columns = show_labels, label_columns
        self.kind: Kind | None = None  # the last table's kind, and its column definitions
        self.columns: Any = None
        self.layout = Layout()

    def print(self, kind: Kind, table: dict[str, Any]) -> None:
        columns = table.get("columnDefinitions") or self.columns
        header = (kind, columns) != (self.kind, self.columns)
        if header and self.kind is not None:
            self.layout = Layout()  # another kind: a table of its own
            click.echo()
        self.kind, self.columns = kind, columns
        cells = table_cells({**table, "columnDefinitions": columns}, self.wide,
                            self.all_namespaces and kind.namespaced, self.show_labels, self.label_columns,
                            resource_word(kind) if self.with_kind else "", header)
        _echo(self.layout.lines(cells))


def _print_tables(api: ApiClient, request: Request, printer: TablePrinter) -> str:
    """Each kind's Table (every object, or the ones named); NotFound for a name
    is reported after what was found is printed, as kubectl does."""
    tables, missing, version = [], [], ""
    for kind, names in request.targets:
        table = _table(api, request, kind, names, missing)
        version = str((table.get("metadata") or {}).get("resourceVersion", ""))
        if table.get("rows"):
            printer.print(kind, table)
        tables.append(table)
    if missing:
        raise missing[0]
    if not any(table.get("rows") for table in tables):
        namespaced = request.namespace is not None and all(kind.namespaced for kind, _ in request.targets)
        click.echo(no_resources_found(request.namespace if namespaced else None), err=True)
    return version


def _table(api: ApiClient, request: Request, kind: Kind, names: tuple[str, ...],
           missing: list[ServerError]) -> dict[str, Any]:
    if not names:
        return api.table(kind, request.scope(kind), **request.selectors)
    merged: dict[str, Any] = {"rows": []}
    for name in names:
        try:
            table = api.table(kind, request.scope(kind), name)
        except ServerError as err:
            if err.code != 404:
                raise
            missing.append(err)
            continue
        merged = {**table, "columnDefinitions": merged.get("columnDefinitions") or table.get("columnDefinitions"),
                  "rows": merged["rows"] + (table.get("rows") or [])}
    return merged


def _watch_tables(api: ApiClient, request: Request, printer: TablePrinter, version: str) -> None:
    """Each change as the rows of its Table, under the listing's columns; a
    watch the server ends with an error prints that, as kubectl does."""
    kind, names = request.targets[0]
    for event in _events(api, request, version, table=True):
        if event.get("type") == "ERROR":
            status = event.get("object") or {}
            _echo(Layout().lines([["STATUS", "REASON", "MESSAGE"],
                                  [str(status.get(key, "")) for key in ("status", "reason", "message")]]))
            return
        printer.print(kind, event.get("object") or {})


class DocumentPrinter:
    """Objects in the form asked for, as kubectl prints them: YAML with its keys
    sorted and `---` before every document but the first, JSON indented by four,
    jsonpath's text, or KIND/NAME. YAML and jsonpath are imported only when asked
    for (a table is most of what `get` prints)."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.printed = 0

    def print(self, kind: Kind, document: dict[str, Any]) -> None:
        document = _without_managed_fields(document)
        if self.output == "name":
            text = f"{resource_word(kind)}/{(document.get('metadata') or {}).get('name', '')}\n"
        elif self.output == "json":
            text = json.dumps(document, indent=4) + "\n"
        elif self.output == "yaml":
            from podnet.cli.kubeyaml import dump

            text = ("---\n" if self.printed else "") + dump(document)
        else:
            from podnet.cli.jsonpath import jsonpath

            text = jsonpath(document, self.output[len("jsonpath="):])
        self.printed += 1
        click.echo(text, nl=False)
        sys.stdout.flush()


def _without_managed_fields(document: dict[str, Any]) -> dict[str, Any]:
    """As kubectl prints objects unless --show-managed-fields: a list's items too."""
    out = dict(document)
    if isinstance(out.get("metadata"), dict):
        out["metadata"] = {k: v for k, v in out["metadata"].items() if k != "managedFields"}
    if isinstance(out.get("items"), list):
        out["items"] = [_without_managed_fields(i) if isinstance(i, dict) else i for i in out["items"]]
    return out


def _print_documents(api: ApiClient, request: Request, printer: DocumentPrinter, whole: bool) -> str:
    """The objects: one alone when one was named, several in a List (each alone
    when a watch follows, or for -o name), as kubectl prints them."""
    found, missing, version = [], [], ""
    for kind, names in request.targets:
        if not names:
            listing = api.list(kind, request.scope(kind), **request.selectors)
            version = str((listing.get("metadata") or {}).get("resourceVersion", ""))
            found += [(kind, item) for item in listing.get("items") or []]
        for name in names:
            try:
                found.append((kind, api.get(kind, request.scope(kind), name)))
            except ServerError as err:
                if err.code != 404:
                    raise
                missing.append(err)
    if whole and request.output != "name" and not (request.single_object and found):
        printer.print(request.targets[0][0], {"apiVersion": "v1", "items": [item for _, item in found],
                                              "kind": "List", "metadata": {"resourceVersion": ""}})
    else:
        for kind, item in found:
            printer.print(kind, item)
    if missing:
        raise missing[0]
    return version


def _watch_documents(api: ApiClient, request: Request, printer: DocumentPrinter, version: str) -> None:
    kind = request.targets[0][0]
    for event in _events(api, request, version, table=False):
        document = event.get("object") or {}
        if event.get("type") == "ERROR":
            raise ServerError(document)
        printer.print(kind, document)


def _events(api: ApiClient, request: Request, version: str, table: bool) -> Iterator[dict[str, Any]]:
    """The watch after the listing (from its version); for one object, kubectl's
    way: from "0", whose first event (the object as it is) is already printed.
    Until the server ends it, or the user does (Ctrl-C)."""
    kind, names = request.targets[0]
    selectors = dict(request.selectors)
    if names:
        selectors["field_selector"] = f"metadata.name={names[0]}"
        version = "0"
    skip = bool(names)
    try:
        for event in api.watch(kind, request.scope(kind), version, table=table, **selectors):
            if event.get("type") == "BOOKMARK" or skip:
                skip = False
                continue
            yield event
    except KeyboardInterrupt:
        return


def _echo(lines: list[str]) -> None:
    if lines:
        click.echo("\n".join(lines))
        sys.stdout.flush()
