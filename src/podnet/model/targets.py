"""What a person types to name one end of a connection: a pod (`web-1`,
`apps/web-1`, `pod/web-1`, `apps/pod/web-1`), a Service (`svc/web`,
`apps/svc/web`), a node (`node/worker`), an IP address, or `internet` (a lab's
outside host).

One parser for `podnet trace`, `podnet policy check` and the web view; kind
words are the Kind registry's, so `po`, `pods`, `service` and `no` work as with
kubectl. Each caller then finds the reference in the cluster as it sees it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from podnet.errors import PodnetError
from podnet.model import kinds
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.service import Service

INTERNET = "internet"


class TargetError(PodnetError):
    """A FROM or TO that is not a way of naming an end."""


@dataclass(frozen=True)
class Reference:
    kind: str  # "Pod", "Service", "Node", "address" or "internet"
    name: str  # the object's name, or the address
    namespace: str | None = None  # for pods and Services

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace is not None else self.name


_NAMED_KINDS = {Pod.kind, Service.kind, Node.kind}
_WHAT = "a pod (NAME or NAMESPACE/NAME), svc/NAME, NAMESPACE/svc/NAME, node/NAME or an IP address"


def parse(word: str, namespace: str) -> Reference:
    """A reference; names without a namespace are in `namespace`."""
    try:
        return Reference("address", str(ipaddress.ip_address(word)))
    except ValueError:
        pass
    if word == INTERNET:
        return Reference(INTERNET, INTERNET)
    parts = word.split("/")
    if not all(parts) or len(parts) > 3:
        raise TargetError(f"{word!r} is not {_WHAT}")
    if len(parts) == 1:
        return Reference(Pod.kind, parts[0], namespace)
    kind = kinds.from_word(parts[-2])
    if kind is None:
        if len(parts) == 2:
            return Reference(Pod.kind, parts[1], parts[0])  # NAMESPACE/NAME
        raise TargetError(f"{word!r} is not {_WHAT}")
    if kind.name not in _NAMED_KINDS:
        raise TargetError(f"{word!r}: a {kind.name} is not an end of a connection; give {_WHAT}")
    if not kind.namespaced:
        if len(parts) == 3:
            raise TargetError(f"{word!r}: a {kind.name} is in no namespace; give {kind.plural[:-1]}/NAME")
        return Reference(kind.name, parts[1])
    return Reference(kind.name, parts[-1], parts[0] if len(parts) == 3 else namespace)
