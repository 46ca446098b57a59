"""Who is asking, and what they may do, as kube-apiserver decides it for client
certificates: the certificate's CN is the user and its Os are the groups.

system:masters may do everything; podnet:view may only get, list and watch.
Nodes' own credentials come later (with agents on the API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podnet.apiserver.status import ApiError

MASTERS = "system:masters"
VIEWERS = "podnet:view"
READ_VERBS = frozenset({"get", "list", "watch"})


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]


def user_of(peer_cert: dict[str, Any] | None) -> User:
    """From the certificate the TLS layer verified against the cluster's CA; none
    (or one the CA did not sign, which the handshake already refused) is 401."""
    if not peer_cert:
        raise ApiError(401, "Unauthorized")
    names = [attribute for rdn in peer_cert.get("subject", ()) for attribute in rdn]
    common = [value for key, value in names if key == "commonName"]
    if not common:
        raise ApiError(401, "Unauthorized")
    return User(common[0], tuple(value for key, value in names if key == "organizationName"))


def allowed(user: User, verb: str) -> bool:
    return MASTERS in user.groups or (VIEWERS in user.groups and verb in READ_VERBS)


def authorize(user: User, verb: str, resource: str, group: str, namespace: str | None,
              subresource: str | None = None, name: str | None = None) -> None:
    """403, in kube-apiserver's words, unless the user's groups allow the verb:
    `pods "web" is forbidden: User "u" cannot create resource "pods/exec" ...`."""
    if allowed(user, verb):
        return
    what = f"{resource}/{subresource}" if subresource else resource
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    named = f'{resource}{"." + group if group else ""}' + (f' "{name}"' if name else "")
    raise ApiError(403, f'{named} is forbidden: User "{user.name}" cannot {verb} '
                        f'resource "{what}" in API group "{group}"{where}',
                   details={"group": group, "kind": resource, **({"name": name} if name else {})})
