"""How the lists (and a few maps) of each served kind merge, as Kubernetes' Go
types declare them: `patchStrategy:"merge" patchMergeKey:"name"` for strategic
merge patch, `+listType`, `+listMapKey`, `+mapType=atomic` and `+structType=atomic`
for server-side apply. The two can differ (a container's ports merge by
containerPort in a strategic patch, by containerPort and protocol in an apply).

A field not named here is a plain one: its maps merge key by key and its lists
are replaced whole, which is what both patch types do with a field that declares
nothing. Paths are dotted field names from the object's root, list items
implied: "spec.containers.ports" is every container's ports.

Checked against k8s.io/api (core/v1, apps/v1) and apimachinery's meta/v1
types.go; EndpointSlice and NetworkPolicy declare only atomic lists, and the
fields podnet does not serve are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Rules = Mapping[str, "Rule"]


@dataclass(frozen=True)
class Rule:
    """One field's declared merge behaviour.

    merge_key: the strategic patch's patchMergeKey (a list of objects, patchStrategy merge);
    merge_set: patchStrategy merge on a list of primitives (a set);
    list_type: server-side apply's listType, "map" (items keyed by map_keys), "set" or
      "atomic"; on a map field, "atomic" is `+mapType=atomic` / `+structType=atomic`;
    key_defaults: the value a missing key field takes (a port's protocol is TCP).
    """

    merge_key: str | None = None
    merge_set: bool = False
    list_type: str = "atomic"
    map_keys: tuple[str, ...] = ()
    key_defaults: tuple[tuple[str, Any], ...] = ()

    @property
    def strategic_merge(self) -> bool:
        """Whether a strategic merge patch merges this list rather than replacing it."""
        return self.merge_key is not None or self.merge_set


def keyed(key: str, *more_keys: str, defaults: Mapping[str, Any] | None = None) -> Rule:
    """Merged by `key` in a strategic patch, keyed by `key` and `more_keys` in an apply."""
    return Rule(merge_key=key, list_type="map", map_keys=(key, *more_keys),
                key_defaults=tuple((defaults or {}).items()))


PRIMITIVE_SET = Rule(merge_set=True, list_type="set")
ATOMIC = Rule()
BY_NAME = keyed("name")
BY_TYPE = keyed("type")
BY_IP = keyed("ip")
PORT_PROTOCOL = {"protocol": "TCP"}


def _object_meta(at: str) -> dict[str, Rule]:
    return {f"{at}.ownerReferences": keyed("uid"), f"{at}.finalizers": PRIMITIVE_SET}


def _container(at: str) -> dict[str, Rule]:
    return {
        at: BY_NAME,
        f"{at}.ports": keyed("containerPort", "protocol", defaults=PORT_PROTOCOL),
        f"{at}.env": BY_NAME,
        f"{at}.volumeMounts": keyed("mountPath"),
        f"{at}.volumeDevices": keyed("devicePath"),
        f"{at}.resources.claims": Rule(list_type="map", map_keys=("name",)),  # no patchStrategy: replaced
    }


def _pod_spec(at: str) -> dict[str, Rule]:
    rules = {
        f"{at}.volumes": BY_NAME,  # patchStrategy "merge,retainKeys": $retainKeys is honoured anywhere
        f"{at}.imagePullSecrets": BY_NAME,
        f"{at}.hostAliases": BY_IP,
        f"{at}.topologySpreadConstraints": keyed("topologyKey", "whenUnsatisfiable"),
        f"{at}.schedulingGates": BY_NAME,
        f"{at}.resourceClaims": BY_NAME,
        f"{at}.nodeSelector": ATOMIC,
    }
    for containers in ("containers", "initContainers", "ephemeralContainers"):
        rules |= _container(f"{at}.{containers}")
    return rules


def _pod_template(at: str) -> dict[str, Rule]:
    return _object_meta(f"{at}.metadata") | _pod_spec(f"{at}.spec")


def _workload() -> dict[str, Rule]:
    """Deployment and ReplicaSet: a selector (an atomic LabelSelector), a pod template, conditions."""
    return {"spec.selector": ATOMIC, "status.conditions": BY_TYPE} | _pod_template("spec.template")


POD_STATUS = {
    "status.conditions": BY_TYPE,
    "status.podIPs": BY_IP,
    "status.hostIPs": Rule(merge_key="ip"),  # merged by a strategic patch, atomic to an apply
    "status.resourceClaimStatuses": BY_NAME,
}

KIND_RULES: dict[str, dict[str, Rule]] = {
    "Pod": _pod_spec("spec") | POD_STATUS,
    "PodTemplate": _pod_template("template"),
    "Deployment": _workload(),
    "ReplicaSet": _workload(),
    "Service": {
        "spec.ports": keyed("port", "protocol", defaults=PORT_PROTOCOL),
        "spec.selector": ATOMIC,
        "status.conditions": BY_TYPE,
    },
    "Node": {"spec.podCIDRs": PRIMITIVE_SET, "status.conditions": BY_TYPE, "status.addresses": BY_TYPE},
    "Namespace": {"status.conditions": BY_TYPE},
    "ServiceAccount": {"secrets": BY_NAME},
    "NetworkPolicy": {"spec.podSelector": ATOMIC},
}


_OBJECT_META = _object_meta("metadata")
_WITH_META = {kind: _OBJECT_META | rules for kind, rules in KIND_RULES.items()}


def rules_for(kind: str) -> Rules:
    """The merge rules of a kind's fields; any kind has its metadata's."""
    return _WITH_META.get(kind, _OBJECT_META)
