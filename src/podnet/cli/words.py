"""How kubectl's command lines name objects, and how its output names them back:
a kind by any of its words (pods, pod, po, and `all` for the kinds in that
category), `KIND/NAME` or `KIND NAME`; `deployment.apps/web` in what it prints."""

from __future__ import annotations

import click

from podnet.errors import PodnetError
from podnet.model import kinds
from podnet.model.kinds import Kind

ALL = "all"  # the category `kubectl get all` lists


def kind_of(word: str) -> Kind:
    registered = kinds.readable_from_word(word)
    if registered is None:
        raise PodnetError(f'the server doesn\'t have a resource type "{word}"')
    return registered


def kinds_of(words: str) -> list[Kind]:
    """`pods,svc`, or `all`: the kinds in the order given, each once."""
    found: list[Kind] = []
    for word in words.split(","):
        for kind in [k for k in (*kinds.KINDS, *kinds.DERIVED) if ALL in k.categories] if word == ALL \
                else [kind_of(word)]:
            if kind not in found:
                found.append(kind)
    return found


def kind_and_name(word: str, name: str | None) -> tuple[Kind, str]:
    """`deployment/web` or `deployment web`, in any of kubectl's spellings."""
    if "/" in word and name is None:
        word, name = word.split("/", 1)
    kind = kind_of(word)
    if not name:
        raise click.UsageError(f"name the {kind.name.lower()}: {kind.plural} NAME or {kind.name.lower()}/NAME")
    return kind, name


def resource_word(kind: Kind) -> str:
    """How kubectl names a kind before an object's name: pod, service, deployment.apps."""
    return f"{kind.name.lower()}.{kind.group}" if kind.group else kind.name.lower()


def scope(kind: Kind, namespace: str | None) -> str | None:
    """The namespace to ask in: none for a cluster-scoped kind."""
    return namespace if kind.namespaced else None
