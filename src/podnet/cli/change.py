"""The kubectl verbs that change one object at a time through the lab's API:
delete, scale, label and annotate. Each sends what kubectl sends (a DELETE, a
merge patch of the scale subresource or of the metadata), prints kubectl's
lines (`pod "x" deleted`, `deployment.apps/web scaled`) and fails with the
server's words."""

from __future__ import annotations

from collections.abc import Callable

import click

from podnet.apiserver.client import ServerError
from podnet.cli.manifests import read_manifests
from podnet.cli.words import kind_and_name, kinds_of, resource_word, scope
from podnet.errors import PodnetError
from podnet.lab.client import cluster_api
from podnet.model import kinds
from podnet.model.kinds import Kind


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
    targets: list[tuple[Kind, str, str]] = [
        (kinds.of(type(m.resource)), m.resource.metadata.namespace, m.resource.metadata.name)
        for m in read_manifests(sources, namespace)]
    if not words and not targets:
        raise click.UsageError("give KIND NAME..., KIND/NAME..., KIND --all or -f FILE")
    with cluster_api(lab_name) as api:
        if words and all("/" in w for w in words):
            targets += [(kind, namespace, name) for kind, name in (kind_and_name(w, None) for w in words)]
        elif words:
            if not words[1:] and not everything:
                raise click.UsageError(f"name what to delete: {words[0]} NAME..., or --all")
            for kind in kinds_of(words[0]):
                chosen = list(words[1:])
                if everything:
                    listing = api.list(kind, scope(kind, namespace))
                    chosen += [item["metadata"]["name"] for item in listing.get("items") or []]
                targets += [(kind, namespace, name) for name in chosen]
        for kind, where, name in targets:
            try:
                api.delete(kind, scope(kind, where), name)
            except ServerError as err:
                if err.code == 404 and ignore_not_found:
                    continue
                raise
            click.echo(f'{resource_word(kind)} "{name}" deleted')


@click.command()
@click.argument("target")
@click.argument("name", required=False)
@click.option("--replicas", type=click.IntRange(0, 1000), required=True)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--lab", "lab_name", help="The lab, when several are up.")
def scale(target: str, name: str | None, replicas: int, namespace: str, lab_name: str | None) -> None:
    """Set a Deployment's replicas: podnet scale deployment/web --replicas 3"""
    kind, name = kind_and_name(target, name)
    if "scale" not in kind.subresources:
        raise click.BadParameter(f"{kind.plural} cannot be scaled; deployments can", param_hint="TARGET")
    with cluster_api(lab_name) as api:
        api.patch(kind, scope(kind, namespace), name, {"spec": {"replicas": replicas}}, subresource="scale")
    click.echo(f"{resource_word(kind)}/{name} scaled")


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
        registered, name = kind_and_name(kind, name)
        edit = _edit_map(pairs, overwrite, field[:-1])
        with cluster_api(lab_name) as api:
            current = api.get(registered, scope(registered, namespace), name)
            before = (current.get("metadata") or {}).get(field) or {}
            after = edit(before)
            if after != before:  # a merge patch: the keys set, and null for the keys removed
                change = {**{key: None for key in before if key not in after},
                          **{key: value for key, value in after.items() if before.get(key) != value}}
                api.patch(registered, scope(registered, namespace), name, {"metadata": {field: change}})
        done = "labeled" if field == "labels" else "annotated"
        click.echo(f"{resource_word(registered)}/{name} {done if after != before else 'not ' + done}")

    return command


label = _relabel("label", "labels")
annotate = _relabel("annotate", "annotations")
