"""The kubectl verbs that change a running cluster: apply, delete, scale, label
and annotate. Each prints kubectl's lines (`pod/x created`, `deployment.apps/web
scaled`) and fails with one line naming the object or the field."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from podnet.api import writes
from podnet.api.apply import Origin, apply as apply_documents
from podnet.api.delete import delete as delete_object
from podnet.errors import ManifestError, PodnetError
from podnet.lab.client import cluster_store
from podnet.model import kinds
from podnet.model.deployment import Deployment
from podnet.model.manifest import Resource, load_yaml_documents, parse_resource, read_text
from podnet.store import resources

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "STDIN"  # how errors name `-f -`, as kubectl's do


def read_manifests(sources: tuple[str, ...], namespace: str | None) -> tuple[list[Resource], list[Origin]]:
    """Every document of every file (a directory's .yaml/.yml/.json files, `-`
    for stdin), parsed before any is applied, and where each came from: an
    error, now or when applied, names file and document."""
    documents: list[Resource] = []
    origins: list[Origin] = []
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
                    documents.append(parse_resource(document))
                except ManifestError as err:
                    raise ManifestError(f"document {i + 1}: {err.field}", err.problem, name) from None
                origins.append((name, i + 1))
    return documents, origins


def kind_and_name(word: str, name: str | None) -> tuple[str, str]:
    """`deployment/web` or `deployment web`, in any of kubectl's spellings."""
    if "/" in word and name is None:
        word, name = word.split("/", 1)
    registered = kinds.from_word(word)
    if registered is None:
        raise click.BadParameter(f"{word!r} is not a kind podnet knows ({', '.join(kinds.names())})", param_hint="KIND")
    if not name:
        raise click.UsageError(f"name the {registered.name.lower()}: {registered.plural} NAME or {registered.name.lower()}/NAME")
    return registered.name, name


def _scope(kind: str, namespace: str) -> str:
    registered = kinds.named(kind)
    return namespace if registered is not None and registered.namespaced else ""


def _resource_word(kind: str) -> str:
    """How kubectl names a kind in its output: deployment.apps, service, pod."""
    return "deployment.apps" if kind == "Deployment" else kind.lower()


@click.command()
@click.option("-f", "--filename", "sources", multiple=True, required=True, help="A manifest file, a directory, or -.")
@click.option("-n", "--namespace", help="For documents that name none.")
@click.option("--lab", "lab_name", help="The lab, when several are up.")
def apply(sources: tuple[str, ...], namespace: str | None, lab_name: str | None) -> None:
    """Create or update what the manifests describe (Namespaces, Pods,
    Deployments, Services); nothing is applied if any document is wrong."""
    documents, origins = read_manifests(sources, namespace)
    with cluster_store(lab_name) as store:
        for applied in apply_documents(store, documents, origins):
            click.echo(f"{_resource_word(applied.resource.kind)}/{applied.resource.metadata.name} {applied.action}")


@click.command()
@click.argument("words", nargs=-1)
@click.option("-f", "--filename", "sources", multiple=True, help="Delete what these manifests describe.")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--all", "everything", is_flag=True, help="Every object of KIND in the namespace.")
@click.option("--ignore-not-found", is_flag=True)
@click.option("--lab", "lab_name", help="The lab, when several are up.")
def delete(words: tuple[str, ...], sources: tuple[str, ...], namespace: str, everything: bool,
           ignore_not_found: bool, lab_name: str | None) -> None:
    """Delete KIND NAME..., KIND/NAME..., KIND --all, or what -f FILE describes.
    Pods end gracefully: their endpoints drain while they stop."""
    targets = [(d.kind, d.metadata.namespace, d.metadata.name) for d in read_manifests(sources, namespace)[0]]
    if not words and not targets:
        raise click.UsageError("give KIND NAME..., KIND/NAME..., KIND --all or -f FILE")
    with cluster_store(lab_name) as store:
        if words and all("/" in w for w in words):
            for word in words:
                kind, name = kind_and_name(word, None)
                targets.append((kind, _scope(kind, namespace), name))
        elif words:
            registered = kinds.from_word(words[0])
            if registered is None:
                raise click.BadParameter(f"{words[0]!r} is not a kind podnet knows ({', '.join(kinds.names())})",
                                         param_hint="KIND")
            chosen = list(words[1:])
            if everything:
                chosen += [r.metadata.name for r in resources.list_kind(store, registered.cls)[0]
                           if not registered.namespaced or r.metadata.namespace == namespace]
            if not chosen and not everything:
                raise click.UsageError(f"name what to delete: {words[0]} NAME..., or --all")
            targets += [(registered.name, _scope(registered.name, namespace), name) for name in chosen]
        for kind, scope, name in targets:
            try:
                delete_object(store, kind, scope, name)
            except writes.NotFound:
                if ignore_not_found:
                    continue
                raise
            click.echo(f'{_resource_word(kind)} "{name}" deleted')


@click.command()
@click.argument("target")
@click.argument("name", required=False)
@click.option("--replicas", type=click.IntRange(0, 1000), required=True)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--lab", "lab_name", help="The lab, when several are up.")
def scale(target: str, name: str | None, replicas: int, namespace: str, lab_name: str | None) -> None:
    """Set a Deployment's replicas: podnet scale deployment/web --replicas 3"""
    kind, name = kind_and_name(target, name)
    if kind != "Deployment":
        raise click.BadParameter(f"{kind.lower()}s cannot be scaled; deployments can", param_hint="TARGET")
    with cluster_store(lab_name) as store:
        writes.modify(store, Deployment, namespace, name, lambda d: d.scaled(replicas))
    click.echo(f"deployment.apps/{name} scaled")


def _edit_map(pairs: tuple[str, ...], overwrite: bool, what: str) -> Callable[[dict[str, str]], dict[str, str]]:
    """kubectl's `k=v` sets, `k-` removes; changing a value needs --overwrite."""
    sets, removes = {}, []
    for pair in pairs:
        if pair.endswith("-") and "=" not in pair:
            removes.append(pair[:-1])
        elif "=" in pair:
            key, value = pair.split("=", 1)
            sets[key] = value
        else:
            raise click.BadParameter(f"{pair!r} is neither KEY=VALUE nor KEY-", param_hint=what.upper() + "S")

    def edit(current: dict[str, str]) -> dict[str, str]:
        for key, value in sets.items():
            if key in current and current[key] != value and not overwrite:
                raise PodnetError(f"'{key}' already has a value ({current[key]}), and --overwrite is false")
        return {**{k: v for k, v in current.items() if k not in removes}, **sets}

    return edit


def _relabel(verb: str, field: str) -> click.Command:
    @click.command(verb, help=f"Set (KEY=VALUE) or remove (KEY-) {field} of an object; --overwrite to change one.")
    @click.argument("kind")
    @click.argument("name")
    @click.argument("pairs", nargs=-1, required=True)
    @click.option("--overwrite", is_flag=True, help="Change values that are already set.")
    @click.option("-n", "--namespace", default="default", show_default=True)
    @click.option("--lab", "lab_name", help="The lab, when several are up.")
    def command(kind: str, name: str, pairs: tuple[str, ...], overwrite: bool, namespace: str,
                lab_name: str | None) -> None:
        from dataclasses import replace

        registered, name = kind_and_name(kind, name)
        edit = _edit_map(pairs, overwrite, field[:-1])

        def change(resource: Resource) -> Resource:
            meta = resource.metadata
            return replace(resource, metadata=replace(meta, **{field: edit(getattr(meta, field))}))  # type: ignore[type-var]

        with cluster_store(lab_name) as store:
            _, changed = writes.update(store, registered, _scope(registered, namespace), name, change)
        done = "labeled" if field == "labels" else "annotated"
        click.echo(f"{_resource_word(registered)}/{name} {done if changed else 'not ' + done}")

    return command


label = _relabel("label", "labels")
annotate = _relabel("annotate", "annotations")
