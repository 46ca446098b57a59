"""Strategic merge patch as kube-apiserver applies it: the merge keys of each kind's
fields as Kubernetes' Go types declare them, the directives, the patches kubectl
apply sends (three-way, with $setElementOrder), the examples of the strategic
merge patch document and of kubernetes.io's kubectl patch task, and refusals."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from podnet.apiserver.merge_keys import rules_for
from podnet.apiserver.patch import PatchError
from podnet.apiserver.strategic import strategic_merge_patch


def pod_spec(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def template(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": spec}}}


def patched_spec(kind: str, live: dict[str, Any], spec_patch: dict[str, Any]) -> dict[str, Any]:
    """The spec (a Deployment's: its pod template's) after a patch of it alone."""
    if kind == "Deployment":
        result = strategic_merge_patch(live, {"spec": {"template": {"spec": spec_patch}}}, rules_for(kind))
        return result["spec"]["template"]["spec"]
    return strategic_merge_patch(live, {"spec": spec_patch}, rules_for(kind))["spec"]


WEB = {"name": "web", "image": "nginx:1"}
LOG = {"name": "log", "image": "busybox"}

# One row per declared field: (kind, live spec, spec patch, spec after).
FIELD_RULES = {
    "containers merge by name": (
        "Pod", {"containers": [WEB, LOG]}, {"containers": [{"name": "log", "image": "busybox:2"}]},
        {"containers": [WEB, {"name": "log", "image": "busybox:2"}]}),
    "a container the live list lacks comes first, as kube-apiserver orders it": (
        "Pod", {"containers": [WEB]}, {"containers": [LOG]}, {"containers": [LOG, WEB]}),
    "initContainers merge by name": (
        "Pod", {"initContainers": [{"name": "init", "image": "a"}, LOG]},
        {"initContainers": [{"name": "init", "image": "b"}]},
        {"initContainers": [{"name": "init", "image": "b"}, LOG]}),
    "ephemeralContainers merge by name": (
        "Pod", {"ephemeralContainers": [{"name": "debug", "image": "a"}]},
        {"ephemeralContainers": [{"name": "debug", "tty": True}]},
        {"ephemeralContainers": [{"name": "debug", "image": "a", "tty": True}]}),
    "containers of a Deployment's pod template merge by name": (
        "Deployment", {"containers": [WEB, LOG]}, {"containers": [{"name": "web", "image": "nginx:2"}]},
        {"containers": [{"name": "web", "image": "nginx:2"}, LOG]}),
    "container ports merge by containerPort": (
        "Pod", {"containers": [{"name": "web", "ports": [{"containerPort": 80, "name": "http"},
                                                          {"containerPort": 443}]}]},
        {"containers": [{"name": "web", "ports": [{"containerPort": 443, "name": "https"}]}]},
        {"containers": [{"name": "web", "ports": [{"containerPort": 80, "name": "http"},
                                                   {"containerPort": 443, "name": "https"}]}]}),
    "env merges by name": (
        "Pod", {"containers": [{"name": "web", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]},
        {"containers": [{"name": "web", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]},
        {"containers": [{"name": "web", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"},
                                                 {"name": "C", "value": "4"}]}]}),
    "envFrom is replaced": (
        "Pod", {"containers": [{"name": "web", "envFrom": [{"configMapRef": {"name": "a"}}]}]},
        {"containers": [{"name": "web", "envFrom": [{"secretRef": {"name": "b"}}]}]},
        {"containers": [{"name": "web", "envFrom": [{"secretRef": {"name": "b"}}]}]}),
    "volumeMounts merge by mountPath": (
        "Pod", {"containers": [{"name": "web", "volumeMounts": [{"name": "a", "mountPath": "/a"}]}]},
        {"containers": [{"name": "web", "volumeMounts": [{"name": "b", "mountPath": "/b"},
                                                          {"mountPath": "/a", "readOnly": True}]}]},
        {"containers": [{"name": "web", "volumeMounts": [{"name": "b", "mountPath": "/b"},
                                                          {"name": "a", "mountPath": "/a", "readOnly": True}]}]}),
    "volumeDevices merge by devicePath": (
        "Pod", {"containers": [{"name": "web", "volumeDevices": [{"name": "a", "devicePath": "/dev/a"}]}]},
        {"containers": [{"name": "web", "volumeDevices": [{"name": "b", "devicePath": "/dev/b"}]}]},
        {"containers": [{"name": "web", "volumeDevices": [{"name": "b", "devicePath": "/dev/b"},
                                                           {"name": "a", "devicePath": "/dev/a"}]}]}),
    "resource claims of a container are replaced": (
        "Pod", {"containers": [{"name": "web", "resources": {"claims": [{"name": "a"}]}}]},
        {"containers": [{"name": "web", "resources": {"claims": [{"name": "b"}]}}]},
        {"containers": [{"name": "web", "resources": {"claims": [{"name": "b"}]}}]}),
    "volumes merge by name": (
        "Pod", {"volumes": [{"name": "a", "emptyDir": {}}]}, {"volumes": [{"name": "b", "emptyDir": {}}]},
        {"volumes": [{"name": "b", "emptyDir": {}}, {"name": "a", "emptyDir": {}}]}),
    "imagePullSecrets merge by name": (
        "Pod", {"imagePullSecrets": [{"name": "a"}]}, {"imagePullSecrets": [{"name": "b"}]},
        {"imagePullSecrets": [{"name": "b"}, {"name": "a"}]}),
    "tolerations are replaced (no patchStrategy)": (
        "Pod", {"tolerations": [{"key": "a", "operator": "Exists"}]},
        {"tolerations": [{"key": "b", "operator": "Exists"}]},
        {"tolerations": [{"key": "b", "operator": "Exists"}]}),
    "hostAliases merge by ip": (
        "Pod", {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}]},
        {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}, {"ip": "10.0.0.2", "hostnames": ["c"]}]},
        {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}, {"ip": "10.0.0.2", "hostnames": ["c"]}]}),
    "readinessGates are replaced": (
        "Pod", {"readinessGates": [{"conditionType": "a"}]}, {"readinessGates": [{"conditionType": "b"}]},
        {"readinessGates": [{"conditionType": "b"}]}),
    "topologySpreadConstraints merge by topologyKey": (
        "Pod", {"topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1}]},
        {"topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2},
                                       {"topologyKey": "host", "maxSkew": 1}]},
        {"topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2},
                                       {"topologyKey": "host", "maxSkew": 1}]}),
    "schedulingGates merge by name": (
        "Pod", {"schedulingGates": [{"name": "a"}]}, {"schedulingGates": [{"name": "b"}]},
        {"schedulingGates": [{"name": "b"}, {"name": "a"}]}),
    "a command is replaced": (
        "Pod", {"containers": [{"name": "web", "command": ["a", "b"]}]},
        {"containers": [{"name": "web", "command": ["c"]}]}, {"containers": [{"name": "web", "command": ["c"]}]}),
    "Service ports merge by port": (
        "Service", {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]},
        {"ports": [{"port": 80, "targetPort": 9090}]},
        {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}),
    "Service externalIPs are replaced": (
        "Service", {"externalIPs": ["1.1.1.1"]}, {"externalIPs": ["2.2.2.2"]}, {"externalIPs": ["2.2.2.2"]}),
    "a Node's podCIDRs merge as a set": (
        "Node", {"podCIDRs": ["10.244.1.0/24"]}, {"podCIDRs": ["fd00::/64", "10.244.1.0/24"]},
        {"podCIDRs": ["fd00::/64", "10.244.1.0/24"]}),
    "a Node's taints are replaced": (
        "Node", {"taints": [{"key": "a", "effect": "NoSchedule"}]}, {"taints": [{"key": "b", "effect": "NoExecute"}]},
        {"taints": [{"key": "b", "effect": "NoExecute"}]}),
    "a NetworkPolicy's ingress rules are replaced": (
        "NetworkPolicy", {"ingress": [{"ports": [{"port": 80}]}]}, {"ingress": [{"ports": [{"port": 53}]}]},
        {"ingress": [{"ports": [{"port": 53}]}]}),
}

# (kind, live, patch, object after): whole objects, where the field is not in spec.
OBJECT_RULES = {
    "ownerReferences merge by uid": (
        "Pod", {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}},
        {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}, {"uid": "1", "controller": True}]}},
        {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}, {"uid": "1", "name": "a", "controller": True}]}}),
    "finalizers merge as a set": (
        "ConfigMap", {"metadata": {"finalizers": ["a", "b"]}}, {"metadata": {"finalizers": ["c", "a"]}},
        {"metadata": {"finalizers": ["c", "a", "b"]}}),
    "a pod template's metadata finalizers merge as a set too": (
        "Deployment", {"spec": {"template": {"metadata": {"finalizers": ["a"]}}}},
        {"spec": {"template": {"metadata": {"finalizers": ["b"]}}}},
        {"spec": {"template": {"metadata": {"finalizers": ["b", "a"]}}}}),
    "a Pod's status conditions merge by type": (
        "Pod", {"status": {"conditions": [{"type": "Ready", "status": "False"},
                                          {"type": "PodScheduled", "status": "True"}]}},
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {"status": {"conditions": [{"type": "Ready", "status": "True"},
                                   {"type": "PodScheduled", "status": "True"}]}}),
    "a Pod's podIPs merge by ip": (
        "Pod", {"status": {"podIPs": [{"ip": "10.244.1.2"}]}}, {"status": {"podIPs": [{"ip": "fd00::2"}]}},
        {"status": {"podIPs": [{"ip": "fd00::2"}, {"ip": "10.244.1.2"}]}}),
    "a Pod's hostIPs merge by ip": (
        "Pod", {"status": {"hostIPs": [{"ip": "192.168.0.2"}]}}, {"status": {"hostIPs": [{"ip": "fd01::2"}]}},
        {"status": {"hostIPs": [{"ip": "fd01::2"}, {"ip": "192.168.0.2"}]}}),
    "a Pod's containerStatuses are replaced": (
        "Pod", {"status": {"containerStatuses": [{"name": "web", "ready": False}, {"name": "log"}]}},
        {"status": {"containerStatuses": [{"name": "web", "ready": True}]}},
        {"status": {"containerStatuses": [{"name": "web", "ready": True}]}}),
    "a Node's status conditions merge by type (the kubelet's heartbeat)": (
        "Node", {"status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"},
                                           {"type": "MemoryPressure", "status": "False"}]}},
        {"status": {"conditions": [{"type": "Ready", "lastHeartbeatTime": "t2"}]}},
        {"status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t2"},
                                   {"type": "MemoryPressure", "status": "False"}]}}),
    "a Node's addresses merge by type": (
        "Node", {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                                          {"type": "Hostname", "address": "n1"}]}},
        {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.9"}]}},
        {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.9"},
                                  {"type": "Hostname", "address": "n1"}]}}),
    "a Deployment's status conditions merge by type": (
        "Deployment", {"status": {"conditions": [{"type": "Available", "status": "False"}]}},
        {"status": {"conditions": [{"type": "Progressing", "status": "True"}]}},
        {"status": {"conditions": [{"type": "Progressing", "status": "True"},
                                   {"type": "Available", "status": "False"}]}}),
    "a ReplicaSet's pod template containers merge by name": (
        "ReplicaSet", {"spec": {"template": {"spec": {"containers": [WEB, LOG]}}}},
        {"spec": {"template": {"spec": {"containers": [{"name": "log", "image": "x"}]}}}},
        {"spec": {"template": {"spec": {"containers": [WEB, {"name": "log", "image": "x"}]}}}}),
    "an EndpointSlice's endpoints are replaced": (
        "EndpointSlice", {"endpoints": [{"addresses": ["10.244.1.2"]}, {"addresses": ["10.244.2.2"]}]},
        {"endpoints": [{"addresses": ["10.244.1.3"]}]}, {"endpoints": [{"addresses": ["10.244.1.3"]}]}),
    "an EndpointSlice's ports are replaced": (
        "EndpointSlice", {"ports": [{"name": "http", "port": 80}]}, {"ports": [{"name": "dns", "port": 53}]},
        {"ports": [{"name": "dns", "port": 53}]}),
    "a ServiceAccount's secrets merge by name": (
        "ServiceAccount", {"secrets": [{"name": "a"}]}, {"secrets": [{"name": "b"}]},
        {"secrets": [{"name": "b"}, {"name": "a"}]}),
    "an unknown kind merges its maps and replaces its lists": (
        "Widget", {"spec": {"items": [{"name": "a"}], "size": {"w": 1}}},
        {"spec": {"items": [{"name": "b"}], "size": {"h": 2}}},
        {"spec": {"items": [{"name": "b"}], "size": {"w": 1, "h": 2}}}),
    "a ConfigMap's data merges key by key, null deletes": (
        "ConfigMap", {"data": {"a": "1", "b": "2"}}, {"data": {"b": None, "c": "3"}}, {"data": {"a": "1", "c": "3"}}),
}

# Directives: (kind, live, patch, object after).
DIRECTIVES = {
    "SMP doc: add a container without replacing the list": (
        "Pod", {"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"}]}},
        {"spec": {"containers": [{"name": "log-tailer", "image": "log-tailer-1.0"}]}},
        {"spec": {"containers": [{"name": "log-tailer", "image": "log-tailer-1.0"},
                                 {"name": "nginx", "image": "nginx-1.0"}]}}),
    "SMP doc: $patch replace on a map takes the map literally": (
        "Pod", {"spec": {"containers": [WEB, LOG], "nodeName": "n1"}},
        {"spec": {"$patch": "replace", "containers": [{"name": "nginx", "image": "nginx-1.0"}]}},
        {"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"}]}}),
    "SMP doc: $patch replace in a list replaces the merged list": (
        "Pod", {"spec": {"containers": [WEB, LOG]}},
        {"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"}, {"$patch": "replace"}]}},
        {"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"}]}}),
    "SMP doc: $patch delete removes every item with the merge key": (
        "Pod", {"spec": {"containers": [{"name": "log-tailer", "image": "a"}, WEB,
                                        {"name": "log-tailer", "image": "b"}]}},
        {"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"},
                                 {"$patch": "delete", "name": "log-tailer"}]}},
        {"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"}, WEB]}}),
    "SMP doc: $patch delete in a map deletes the map": (
        "Deployment", {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
        {"spec": {"strategy": {"rollingUpdate": {"$patch": "delete"}}}},
        {"spec": {"strategy": {"type": "RollingUpdate"}}}),
    "SMP doc: null deletes the map too": (
        "Deployment", {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
        {"spec": {"strategy": {"rollingUpdate": None}}}, {"spec": {"strategy": {"type": "RollingUpdate"}}}),
    "SMP doc: $deleteFromPrimitiveList/finalizers": (
        "ConfigMap", {"metadata": {"finalizers": ["a", "b", "c"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "c"]}}, {"metadata": {"finalizers": ["a"]}}),
    "SMP doc: $setElementOrder on primitives reorders": (
        "ConfigMap", {"metadata": {"finalizers": ["a", "b", "c"]}},
        {"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"]}}, {"metadata": {"finalizers": ["b", "c", "a"]}}),
    "SMP doc: $setElementOrder on maps reorders by merge key": (
        "Pod", {"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}},
        {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}]}},
        {"spec": {"containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}]}}),
    "SMP doc: $retainKeys clears a union's other members": (
        "Widget", {"union": {"foo": "a", "other": "b"}},
        {"union": {"$retainKeys": ["another", "bar"], "another": "d", "bar": "c"}},
        {"union": {"another": "d", "bar": "c"}}),
    "kubectl patch task: a new container is added to the pod template": (
        "Deployment", {"spec": {"template": {"spec": {"containers": [{"name": "patch-demo-ctr", "image": "nginx"}],
                                                      "tolerations": [{"effect": "NoSchedule", "key": "dedicated",
                                                                       "value": "test-team"}]}}}},
        {"spec": {"template": {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}}},
        {"spec": {"template": {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"},
                                                       {"name": "patch-demo-ctr", "image": "nginx"}],
                                        "tolerations": [{"effect": "NoSchedule", "key": "dedicated",
                                                         "value": "test-team"}]}}}}),
    "kubectl patch task: tolerations are replaced, not merged": (
        "Deployment", {"spec": {"template": {"spec": {"tolerations": [{"effect": "NoSchedule", "key": "dedicated",
                                                                       "value": "test-team"}]}}}},
        {"spec": {"template": {"spec": {"tolerations": [{"effect": "NoSchedule", "key": "disktype",
                                                         "value": "ssd"}]}}}},
        {"spec": {"template": {"spec": {"tolerations": [{"effect": "NoSchedule", "key": "disktype",
                                                         "value": "ssd"}]}}}}),
    "kubectl patch task: $retainKeys switches the strategy to Recreate": (
        "Deployment", {"spec": {"strategy": {"type": "RollingUpdate",
                                             "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}},
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        {"spec": {"strategy": {"type": "Recreate"}}}),
    "$retainKeys lets a null pass": (
        "Deployment", {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}},
        {"spec": {"strategy": {"type": "Recreate"}}}),
    "$patch delete of an item the list lacks changes nothing": (
        "Pod", {"spec": {"containers": [WEB]}}, {"spec": {"containers": [{"name": "gone", "$patch": "delete"}]}},
        {"spec": {"containers": [WEB]}}),
    "a list the live object lacks drops the patch's deletions": (
        "Pod", {"spec": {}}, {"spec": {"containers": [WEB, {"name": "gone", "$patch": "delete"}]}},
        {"spec": {"containers": [WEB]}}),
    "a value the live object lacks keeps no nulls and no directives": (
        "Pod", {"spec": {}}, {"spec": {"securityContext": {"runAsUser": 1, "runAsGroup": None,
                                                            "$retainKeys": ["runAsUser", "runAsGroup"]}}},
        {"spec": {"securityContext": {"runAsUser": 1}}}),
    "$patch delete of a map the live object lacks adds nothing": (
        "Pod", {"spec": {}}, {"spec": {"affinity": {"$patch": "delete"}}}, {"spec": {}}),
    "a whole object deleted is empty": ("Pod", {"spec": {}}, {"$patch": "delete"}, {}),
    "a value of another type replaces": (
        "Pod", {"spec": {"containers": [WEB]}}, {"spec": {"containers": {"name": "x"}}},
        {"spec": {"containers": {"name": "x"}}}),
    "$deleteFromPrimitiveList of a missing list changes nothing": (
        "ConfigMap", {"metadata": {}}, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}},
        {"metadata": {}}),
    "a set adds and deletes in one patch": (
        "ConfigMap", {"metadata": {"finalizers": ["a", "b"]}},
        {"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]}},
        {"metadata": {"finalizers": ["c", "b"]}}),
    "items the patch names come in its order, the others before the first live item after them": (
        "Pod", {"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}},
        {"spec": {"containers": [{"name": "c", "image": "x"}, {"name": "a", "image": "y"}]}},
        {"spec": {"containers": [{"name": "b"}, {"name": "c", "image": "x"}, {"name": "a", "image": "y"}]}}),
    "$setElementOrder puts a new item where it is named": (
        "Pod", {"spec": {"containers": [{"name": "a"}, {"name": "c"}]}},
        {"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
                  "containers": [{"name": "b"}]}},
        {"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}}),
    "$setElementOrder places a server-only item before the ordered item it preceded live": (
        "Pod", {"spec": {"containers": [{"name": "a"}, {"name": "sidecar"}, {"name": "b"}]}},
        {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}},
        {"spec": {"containers": [{"name": "sidecar"}, {"name": "b"}, {"name": "a"}]}}),
    "$setElementOrder keeps a server-only item last when it was last": (
        "Pod", {"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "sidecar"}]}},
        {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}},
        {"spec": {"containers": [{"name": "b"}, {"name": "a"}, {"name": "sidecar"}]}}),
}


@pytest.mark.parametrize("kind, live, patch, spec_after", FIELD_RULES.values(), ids=FIELD_RULES.keys())
def test_field_rule(kind: str, live: dict[str, Any], patch: dict[str, Any], spec_after: dict[str, Any]) -> None:
    obj = template(**live) if kind == "Deployment" else {"kind": kind, "spec": live}
    assert patched_spec(kind, obj, patch) == spec_after


@pytest.mark.parametrize("kind, live, patch, after", (OBJECT_RULES | DIRECTIVES).values(),
                         ids=(OBJECT_RULES | DIRECTIVES).keys())
def test_patch(kind: str, live: dict[str, Any], patch: dict[str, Any], after: dict[str, Any]) -> None:
    before_live, before_patch = copy.deepcopy(live), copy.deepcopy(patch)
    assert strategic_merge_patch(live, patch, rules_for(kind)) == after
    assert (live, patch) == (before_live, before_patch)  # neither is changed in place


# --- the patches kubectl apply sends (a three-way diff of last-applied, the file and the live object)

def deployment(containers: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps", **meta},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}}}


LIVE_WEB = {"name": "web", "image": "nginx:1", "imagePullPolicy": "IfNotPresent", "terminationMessagePath":
            "/dev/termination-log", "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"},
                                              {"containerPort": 8081, "name": "alt", "protocol": "TCP"}]}
APPLIED = json.dumps({"apiVersion": "apps/v1", "kind": "Deployment"})


def kubectl_patch(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": APPLIED}},
            "spec": {"template": {"spec": spec}}}


KUBECTL_APPLY = {
    "image changed, port 8081 changed to 8080, port 80 kept": (
        [LIVE_WEB],
        {"$setElementOrder/containers": [{"name": "web"}],
         "containers": [{"name": "web", "image": "nginx:2",
                         "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 8080}],
                         "ports": [{"containerPort": 8080, "name": "alt"},
                                   {"$patch": "delete", "containerPort": 8081}]}]},
        [LIVE_WEB | {"image": "nginx:2", "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"},
                                                    {"containerPort": 8080, "name": "alt"}]}]),
    "image changed, port 8080 renamed, port 80 kept (the brief's form)": (
        [LIVE_WEB | {"ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"},
                               {"containerPort": 8080, "name": "old", "protocol": "TCP"}]}],
        {"$setElementOrder/containers": [{"name": "web"}],
         "containers": [{"name": "web", "image": "nginx:2",
                         "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 8080}],
                         "ports": [{"containerPort": 8080, "name": "alt"}]}]},
        [LIVE_WEB | {"image": "nginx:2", "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"},
                                                    {"containerPort": 8080, "name": "alt", "protocol": "TCP"}]}]),
    "a container removed from the file": (
        [LIVE_WEB, {"name": "log", "image": "busybox"}],
        {"$setElementOrder/containers": [{"name": "web"}], "containers": [{"$patch": "delete", "name": "log"}]},
        [LIVE_WEB]),
    "a container added before the existing one": (
        [LIVE_WEB],
        {"$setElementOrder/containers": [{"name": "init"}, {"name": "web"}],
         "containers": [{"name": "init", "image": "busybox"}]},
        [{"name": "init", "image": "busybox"}, LIVE_WEB]),
    "an env var changed, one removed, one added, order set": (
        [{"name": "web", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"},
                                 {"name": "C", "value": "3"}]}],
        {"$setElementOrder/containers": [{"name": "web"}],
         "containers": [{"name": "web", "$setElementOrder/env": [{"name": "D"}, {"name": "A"}, {"name": "C"}],
                         "env": [{"name": "D", "value": "4"}, {"name": "C", "value": "30"},
                                 {"$patch": "delete", "name": "B"}]}]},
        [{"name": "web", "env": [{"name": "D", "value": "4"}, {"name": "A", "value": "1"},
                                 {"name": "C", "value": "30"}]}]),
    "a container the controller added stays (not in last-applied, not in the patch)": (
        [LIVE_WEB, {"name": "istio-proxy", "image": "envoy"}],
        {"$setElementOrder/containers": [{"name": "web"}], "containers": [{"name": "web", "image": "nginx:2"}]},
        [LIVE_WEB | {"image": "nginx:2"}, {"name": "istio-proxy", "image": "envoy"}]),
}


@pytest.mark.parametrize("live_containers, spec_patch, containers_after", KUBECTL_APPLY.values(),
                         ids=KUBECTL_APPLY.keys())
def test_kubectl_apply_patch(live_containers: list[dict[str, Any]], spec_patch: dict[str, Any],
                             containers_after: list[dict[str, Any]]) -> None:
    live = deployment(live_containers, annotations={"deployment.kubernetes.io/revision": "1"})
    result = strategic_merge_patch(live, kubectl_patch(spec_patch), rules_for("Deployment"))
    assert result == deployment(containers_after, annotations={
        "deployment.kubernetes.io/revision": "1", "kubectl.kubernetes.io/last-applied-configuration": APPLIED})


def test_kubectl_apply_changes_a_volume_source_with_retain_keys() -> None:
    live = deployment([LIVE_WEB])
    live["spec"]["template"]["spec"]["volumes"] = [{"name": "conf", "configMap": {"name": "a", "defaultMode": 420}},
                                                   {"name": "cache", "emptyDir": {}}]
    patch = kubectl_patch({"$setElementOrder/volumes": [{"name": "conf"}, {"name": "cache"}],
                           "volumes": [{"$retainKeys": ["name", "secret"], "name": "conf",
                                        "secret": {"secretName": "b"}, "configMap": None}]})
    result = strategic_merge_patch(live, patch, rules_for("Deployment"))
    assert result["spec"]["template"]["spec"]["volumes"] == [{"name": "conf", "secret": {"secretName": "b"}},
                                                             {"name": "cache", "emptyDir": {}}]


def test_kubectl_apply_removes_a_label_with_null() -> None:
    live = deployment([LIVE_WEB], labels={"app": "web", "tier": "front"})
    result = strategic_merge_patch(live, {"metadata": {"labels": {"tier": None}}}, rules_for("Deployment"))
    assert result["metadata"]["labels"] == {"app": "web"}


# --- refusals, in kube-apiserver's words

REFUSALS = {
    "a patch that is not an object": (
        [{"op": "add"}], 400, "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    "an unknown $patch in a map": (
        {"spec": {"$patch": "shuffle", "a": "b"}}, 400, "unknown patch type: shuffle in map: map[$patch:shuffle a:b]"),
    "an unknown $patch in a list": (
        {"spec": {"containers": [{"name": "a", "$patch": "shuffle"}]}}, 400,
        "unknown patch type: shuffle in map: map[$patch:shuffle name:a]"),
    "$patch merge in a list": (
        {"spec": {"containers": [{"$patch": "merge"}]}}, 400, "merging lists cannot yet be specified in the patch"),
    "a merged item without its merge key": (
        {"spec": {"containers": [{"image": "x"}]}}, 400, "map: map[image:x] does not contain declared merge key: name"),
    "a deletion without the merge key": (
        {"spec": {"containers": [{"$patch": "delete", "image": "x"}]}}, 400,
        "map: map[$patch:delete image:x] does not contain declared merge key: name"),
    "$retainKeys that is not a list": (
        {"spec": {"$retainKeys": "containers"}}, 400, "invalid patch format of retainKeys"),
    "a field $retainKeys does not name": (
        {"spec": {"$retainKeys": ["nodeName"], "hostname": "h"}}, 422, "patch content doesn't match retainKeys list"),
    "$setElementOrder that is not a list": (
        {"spec": {"$setElementOrder/containers": {"name": "web"}}}, 400,
        "invalid patch format of setElementOrder list"),
    "$setElementOrder of no field": (
        {"spec": {"$setElementOrder/": []}}, 400, "invalid patch format of setElementOrder list"),
    "items out of $setElementOrder's order": (
        {"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                  "containers": [{"name": "b"}, {"name": "a"}]}}, 400,
        "The order in patch list: [map[name:b] map[name:a]] doesn't match $setElementOrder list: "
        "[map[name:a] map[name:b]]"),
    "$deleteFromPrimitiveList that is not a list": (
        {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}, 400, "invalid patch format of primitive list"),
    "a merged list of lists": ({"metadata": {"finalizers": [["a"]]}}, 422, "lists of lists are not supported"),
    "a merged list of mixed types": (
        {"metadata": {"finalizers": [1]}}, 400, "list element types are not identical: [a 1]"),
}


@pytest.mark.parametrize("patch, code, message", REFUSALS.values(), ids=REFUSALS.keys())
def test_refused(patch: Any, code: int, message: str) -> None:
    live = {"metadata": {"finalizers": ["a"]}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    with pytest.raises(PatchError) as refused:
        strategic_merge_patch(live, patch, rules_for("Pod"))
    assert (refused.value.code, refused.value.message) == (code, message)
    assert "\n" not in str(refused.value)


def test_every_kind_has_its_metadata_rules() -> None:
    for kind in ("Pod", "Service", "Widget"):
        assert rules_for(kind)["metadata.ownerReferences"].merge_key == "uid"
