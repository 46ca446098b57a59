"""Server-side Tables: each kind's cells as kube-apiserver prints them, the Table's
shape as kubectl reads it, and the layout kubectl gives it. The expected texts
were checked against kubectl 1.32 reading these Tables from a stub server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from podnet.apiserver.tables import (PRINTERS, TableOptions, TableRequestError, default_table, human_duration,
                                     no_resources_found, render_table, to_table)

NOW = datetime(2026, 12, 7, 18, 0, 0, tzinfo=timezone.utc)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, namespace: str | None = "apps", age: float = 600, **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "resourceVersion": "42", "creationTimestamp": ago(age)}
    if namespace:
        out["namespace"] = namespace
    return out | more


def cells(obj: dict[str, Any]) -> list[Any]:
    (row,) = to_table(obj, NOW)["rows"]
    return row["cells"]


def shown(obj: dict[str, Any], *names: str) -> list[Any]:
    """The cells of the named columns only."""
    table = to_table(obj, NOW)
    columns = [c["name"] for c in table["columnDefinitions"]]
    return [table["rows"][0]["cells"][columns.index(name)] for name in names]


@pytest.mark.parametrize(("seconds", "text"), [
    (-2, "<invalid>"), (-1.5, "0s"), (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (125, "2m5s"),
    (599, "9m59s"), (600, "10m"), (10799, "179m"), (10800, "3h"), (3 * 3600 + 1800, "3h30m"), (8 * 3600, "8h"),
    (47 * 3600 + 59 * 60, "47h"), (48 * 3600, "2d"), (53 * 3600, "2d5h"), (8 * 86400, "8d"), (729 * 86400, "729d"),
    (730 * 86400, "2y"), (740 * 86400, "2y10d"), (8 * 365 * 86400, "8y"),
], ids=lambda value: str(value))
def test_ages_read_as_kubectl_prints_them(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def pod(status: dict[str, Any], containers: int = 1, age: float = 600, spec: dict[str, Any] | None = None,
        **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta("p", age=age, **metadata),
            "spec": {"containers": [{"name": f"c{i}", "image": "nginx"} for i in range(containers)], **(spec or {})},
            "status": status}


RUNNING = {"running": {"startedAt": ago(500)}}


def running(name: str = "c0", ready: bool = True, restarts: int = 0, **more: Any) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts, "state": RUNNING} | more


def ended(reason: str = "", exit_code: int = 0, **more: Any) -> dict[str, Any]:
    return {"terminated": {"exitCode": exit_code, **({"reason": reason} if reason else {}), **more}}


READY = {"type": "Ready", "status": "True"}
SIDECAR = {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}
INITS = {"initContainers": [{"name": "i0", "image": "busybox"}, {"name": "i1", "image": "busybox"}]}

POD_CASES = {
    "two containers, one not ready": (
        pod({"phase": "Running", "containerStatuses": [running("c0"), running("c1", ready=False)]}, containers=2),
        ["1/2", "Running", "0"]),
    "crash looping, restarts with when the last was": (
        pod({"phase": "Running", "containerStatuses": [{
            "name": "c0", "ready": False, "restartCount": 12, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": ended("Error", 1, finishedAt=ago(40))}]}),
        ["0/1", "CrashLoopBackOff", "12 (40s ago)"]),
    "restarts without a finish time are a bare count": (
        pod({"phase": "Running", "containerStatuses": [running(restarts=2)]}), ["1/1", "Running", "2"]),
    "the latest restart of all containers": (
        pod({"phase": "Running", "containerStatuses": [
            running("c0", restarts=1, lastState=ended("Error", 1, finishedAt=ago(3600))),
            running("c1", restarts=2, lastState=ended("OOMKilled", 137, finishedAt=ago(125)))]}, containers=2),
        ["2/2", "Running", "3 (2m5s ago)"]),
    "pending, nothing started": (pod({"phase": "Pending"}), ["0/1", "Pending", "0"]),
    "image pull waiting": (
        pod({"phase": "Pending", "containerStatuses": [{"name": "c0", "ready": False, "restartCount": 0,
                                                        "state": {"waiting": {"reason": "ErrImagePull"}}}]}),
        ["0/1", "ErrImagePull", "0"]),
    "terminating": (
        pod({"phase": "Running", "containerStatuses": [running()]}, deletionTimestamp=ago(3)),
        ["1/1", "Terminating", "0"]),
    "a finished pod being deleted is not Terminating": (
        pod({"phase": "Succeeded", "containerStatuses": [{"name": "c0", "ready": False, "restartCount": 0,
                                                          "state": ended("Completed")}]}, deletionTimestamp=ago(3)),
        ["0/1", "Completed", "0"]),
    "a pod of a lost node being deleted is Unknown": (
        pod({"phase": "Running", "reason": "NodeLost", "containerStatuses": [running()]}, deletionTimestamp=ago(3)),
        ["1/1", "Unknown", "0"]),
    "completed": (
        pod({"phase": "Succeeded", "containerStatuses": [{"name": "c0", "ready": False, "restartCount": 0,
                                                          "state": ended("Completed")}]}),
        ["0/1", "Completed", "0"]),
    "one completed beside one running, pod ready": (
        pod({"phase": "Running", "conditions": [READY], "containerStatuses": [
            {"name": "c0", "ready": False, "restartCount": 0, "state": ended("Completed")}, running("c1")]},
            containers=2),
        ["1/2", "Running", "0"]),
    "one completed beside one running, pod not ready": (
        pod({"phase": "Running", "containerStatuses": [
            {"name": "c0", "ready": False, "restartCount": 0, "state": ended("Completed")}, running("c1")]},
            containers=2),
        ["1/2", "NotReady", "0"]),
    "the first container's reason wins": (
        pod({"phase": "Running", "containerStatuses": [
            {"name": "c0", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            {"name": "c1", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull"}}}]},
            containers=2),
        ["0/2", "CrashLoopBackOff", "0"]),
    "killed without a reason": (
        pod({"phase": "Failed", "containerStatuses": [{"name": "c0", "ready": False, "restartCount": 0,
                                                       "state": ended(exit_code=137)}]}),
        ["0/1", "ExitCode:137", "0"]),
    "signalled without a reason": (
        pod({"phase": "Failed", "containerStatuses": [{"name": "c0", "ready": False, "restartCount": 0,
                                                       "state": ended(exit_code=0, signal=9)}]}),
        ["0/1", "Signal:9", "0"]),
    "evicted": (pod({"phase": "Failed", "reason": "Evicted"}), ["0/1", "Evicted", "0"]),
    "scheduling gated": (
        pod({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                 "reason": "SchedulingGated"}]}),
        ["0/1", "SchedulingGated", "0"]),
    "first init container running": (
        pod({"phase": "Pending", "initContainerStatuses": [
            {"name": "i0", "ready": False, "restartCount": 0, "state": RUNNING},
            {"name": "i1", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]},
            spec=INITS),
        ["0/1", "Init:0/2", "0"]),
    "second init container waiting to start": (
        pod({"phase": "Pending", "initContainerStatuses": [
            {"name": "i0", "ready": True, "restartCount": 0, "state": ended("Completed")},
            {"name": "i1", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]},
            spec=INITS),
        ["0/1", "Init:1/2", "0"]),
    "init container crash looping counts its restarts": (
        pod({"phase": "Pending", "initContainerStatuses": [
            {"name": "i0", "ready": False, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": ended("Error", 1, finishedAt=ago(20))}]}, spec=INITS),
        ["0/1", "Init:CrashLoopBackOff", "4 (20s ago)"]),
    "init container failed with a code": (
        pod({"phase": "Pending", "initContainerStatuses": [
            {"name": "i0", "ready": False, "restartCount": 0, "state": ended(exit_code=2)}]}, spec=INITS),
        ["0/1", "Init:ExitCode:2", "0"]),
    "init container failed with a reason": (
        pod({"phase": "Pending", "initContainerStatuses": [
            {"name": "i0", "ready": False, "restartCount": 0, "state": ended("Error", 2)}]}, spec=INITS),
        ["0/1", "Init:Error", "0"]),
    "a started sidecar counts among the containers": (
        pod({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
             "initContainerStatuses": [running("proxy", started=True, restarts=1)],
             "containerStatuses": [running("c0")]}, spec={"initContainers": [SIDECAR]}),
        ["2/2", "Running", "1"]),
    "finished init containers' restarts no longer count": (
        pod({"phase": "Running", "initContainerStatuses": [
            {"name": "i0", "ready": True, "restartCount": 3, "state": ended("Completed")},
            {"name": "i1", "ready": True, "restartCount": 0, "state": ended("Completed")}],
            "containerStatuses": [running()]}, spec=INITS),
        ["1/1", "Running", "0"]),
}


@pytest.mark.parametrize("case", POD_CASES)
def test_pod_ready_status_and_restarts(case: str) -> None:
    obj, expected = POD_CASES[case]
    assert shown(obj, "Ready", "Status", "Restarts") == expected


def test_pod_row_whole_and_wide() -> None:
    obj = pod({"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00::5"}],
               "nominatedNodeName": "node-3", "conditions": [READY, {"type": "example.com/lb", "status": "True"}],
               "containerStatuses": [running()]},
              spec={"nodeName": "node-1", "readinessGates": [{"conditionType": "example.com/lb"},
                                                             {"conditionType": "example.com/dns"}]})
    assert cells(obj) == ["p", "1/1", "Running", "0", "10m", "10.244.1.5", "node-1", "node-3", "1/2"]
    bare = pod({"phase": "Pending"})
    assert cells(bare)[5:] == ["<none>", "<none>", "<none>", "<none>"]


@pytest.mark.parametrize(("phase", "conditions"), [
    ("Running", None),
    ("Succeeded", [{"type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully."}]),
    ("Failed", [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
])
def test_finished_pods_rows_say_so(phase: str, conditions: list[dict[str, str]] | None) -> None:
    (row,) = to_table(pod({"phase": phase}), NOW)["rows"]
    assert row.get("conditions") == conditions


def service(kind: str, **spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {})
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta("s", age=100),
            "spec": {"type": kind, "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], **spec}, "status": status}


SERVICE_CASES = {
    "ClusterIP": (service("ClusterIP", ports=[{"port": 80, "protocol": "TCP"}], selector={"app": "web"}),
                  ["s", "ClusterIP", "10.96.0.10", "<none>", "80/TCP", "100s", "app=web"]),
    "ClusterIP with external IPs": (service("ClusterIP", externalIPs=["203.0.113.7", "203.0.113.8"],
                                            ports=[{"port": 80, "protocol": "TCP"}]),
                                    ["s", "ClusterIP", "10.96.0.10", "203.0.113.7,203.0.113.8", "80/TCP", "100s",
                                     "<none>"]),
    "NodePort": (service("NodePort", ports=[{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                                           {"port": 53, "protocol": "UDP"}], selector={"b": "2", "a": "1"}),
                 ["s", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "100s", "a=1,b=2"]),
    "LoadBalancer pending": (service("LoadBalancer", ports=[{"port": 443, "nodePort": 31443, "protocol": "TCP"}]),
                             ["s", "LoadBalancer", "10.96.0.10", "<pending>", "443:31443/TCP", "100s", "<none>"]),
    "LoadBalancer with ingress": (
        service("LoadBalancer", externalIPs=["203.0.113.9"], ports=[{"port": 80, "nodePort": 30001}],
                status={"loadBalancer": {"ingress": [{"ip": "198.51.100.2"}, {"hostname": "lb.example"},
                                                     {"ip": "198.51.100.2"}]}}),
        ["s", "LoadBalancer", "10.96.0.10", "198.51.100.2,lb.example,203.0.113.9", "80:30001/TCP", "100s", "<none>"]),
    "headless": (service("ClusterIP", clusterIP="None", clusterIPs=["None"], ports=[{"port": 80, "protocol": "TCP"}]),
                 ["s", "ClusterIP", "None", "<none>", "80/TCP", "100s", "<none>"]),
    "ExternalName, no ports": (service("ExternalName", externalName="db.example", clusterIP="", clusterIPs=[]),
                               ["s", "ExternalName", "<none>", "db.example", "<none>", "100s", "<none>"]),
}


@pytest.mark.parametrize("case", SERVICE_CASES)
def test_service_row(case: str) -> None:
    obj, expected = SERVICE_CASES[case]
    assert cells(obj) == expected


def endpoints(*subsets: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta("s"), "subsets": list(subsets)}


def addresses(*ips: str) -> list[dict[str, str]]:
    return [{"ip": ip} for ip in ips]


ENDPOINTS_CASES = {
    "none": (endpoints(), "<none>"),
    "three": (endpoints({"addresses": addresses("10.0.0.1", "10.0.0.2"), "ports": [{"port": 80}]}),
              "10.0.0.1:80,10.0.0.2:80"),
    "more than three": (endpoints({"addresses": addresses(*(f"10.0.0.{i}" for i in range(1, 6))),
                                   "ports": [{"port": 80}]}),
                        "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more..."),
    "every port of each address": (endpoints({"addresses": addresses("10.0.0.1", "10.0.0.2"),
                                              "ports": [{"port": 80}, {"port": 443}]}),
                                   "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."),
    "headless without ports": (endpoints({"addresses": addresses("10.0.0.1")}), "10.0.0.1"),
    "only not-ready addresses": (endpoints({"notReadyAddresses": addresses("10.0.0.1"), "ports": [{"port": 80}]}), ""),
    "IPv6": (endpoints({"addresses": addresses("fd00::1"), "ports": [{"port": 80}]}), "[fd00::1]:80"),
}


@pytest.mark.parametrize("case", ENDPOINTS_CASES)
def test_endpoints_cell(case: str) -> None:
    obj, expected = ENDPOINTS_CASES[case]
    assert cells(obj) == ["s", expected, "10m"]


def endpoint_slice(ports: list[dict[str, Any]], ips: list[str]) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta("s-abc"),
            "addressType": "IPv4", "ports": ports,
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ip != "10.0.0.9"}} for ip in ips]}


@pytest.mark.parametrize(("ports", "ips", "port_text", "endpoint_text"), [
    ([{"port": 80, "name": "http"}], ["10.0.0.1"], "80", "10.0.0.1"),
    ([{"name": "dns"}, {}, {"port": 53}, {"port": 54}], [], "dns,*,53 + 1 more...", "<unset>"),
    ([], ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.9"], "<unset>", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."),
], ids=["one", "ports named, unset and more", "not-ready endpoints too"])
def test_endpoint_slice_row(ports: list[dict[str, Any]], ips: list[str], port_text: str, endpoint_text: str) -> None:
    assert cells(endpoint_slice(ports, ips)) == ["s-abc", "IPv4", port_text, endpoint_text, "10m"]


def node(conditions: list[dict[str, str]], labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta("n1", None, 3 * 86400, labels=labels or {}),
            "spec": spec, "status": {"conditions": conditions}}


NODE_CASES = {
    "ready": (node([READY]), ["Ready", "<none>"]),
    "not ready": (node([{"type": "Ready", "status": "Unknown"}]), ["NotReady", "<none>"]),
    "no conditions yet": (node([]), ["Unknown", "<none>"]),
    "cordoned": (node([READY], unschedulable=True), ["Ready,SchedulingDisabled", "<none>"]),
    "roles from both labels": (node([READY], {"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/": "x",
                                              "node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "edge"}),
                               ["Ready", "control-plane,edge,worker"]),
}


@pytest.mark.parametrize("case", NODE_CASES)
def test_node_status_and_roles(case: str) -> None:
    obj, expected = NODE_CASES[case]
    assert shown(obj, "Status", "Roles") == expected


def test_node_row_whole_and_wide() -> None:
    obj = node([READY])
    obj["status"] |= {"addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.1"}],
                      "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                   "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "podnet://0.1"}}
    assert cells(obj) == ["n1", "Ready", "<none>", "3d", "v1.32.0", "10.0.0.1", "<none>",
                          "Debian GNU/Linux 12 (bookworm)", "6.1.0-18-amd64", "podnet://0.1"]
    assert cells(node([]))[4:] == ["", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"]


TEMPLATE = {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}}


@pytest.mark.parametrize(("obj", "expected"), [
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web", age=7200),
      "spec": {"replicas": 3, "template": TEMPLATE,
               "selector": {"matchLabels": {"app": "web"},
                            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]},
                                                 {"key": "legacy", "operator": "DoesNotExist"},
                                                 {"key": "zone", "operator": "Exists"}]}},
      "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}},
     ["web", "2/3", 3, 2, "120m", "web,log", "nginx:1.27,busybox", "app=web,!legacy,tier in (back,front),zone"]),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("new", age=5),
      "spec": {"template": TEMPLATE, "selector": {"matchLabels": {"app": "new"}}}},
     ["new", "0/1", 0, 0, "5s", "web,log", "nginx:1.27,busybox", "app=new"]),
    ({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta("web-7d9f8c6b5"),
      "spec": {"replicas": 3, "template": TEMPLATE, "selector": {"matchLabels": {"app": "web"}}},
      "status": {"replicas": 3, "readyReplicas": 1}},
     ["web-7d9f8c6b5", 3, 3, 1, "10m", "web,log", "nginx:1.27,busybox", "app=web"]),
    ({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta("old"),
      "spec": {"replicas": 0, "template": TEMPLATE, "selector": {}}},
     ["old", 0, 0, 0, "10m", "web,log", "nginx:1.27,busybox", "<none>"]),
], ids=["deployment", "deployment without status", "replicaset", "replicaset scaled down"])
def test_workload_rows(obj: dict[str, Any], expected: list[Any]) -> None:
    assert cells(obj) == expected


@pytest.mark.parametrize(("obj", "expected"), [
    ({"apiVersion": "v1", "kind": "Namespace", "metadata": meta("apps", None, 86400 * 9),
      "status": {"phase": "Active"}}, ["apps", "Active", "9d"]),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cm"), "data": {"a": "1", "b": "2"},
      "binaryData": {"c": "AA=="}}, ["cm", 3, "10m"]),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("empty")}, ["empty", 0, "10m"]),
    ({"apiVersion": "v1", "kind": "Secret", "metadata": meta("tls"), "type": "kubernetes.io/tls",
      "data": {"tls.crt": "", "tls.key": ""}}, ["tls", "kubernetes.io/tls", 2, "10m"]),
    ({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("default")}, ["default", 0, "10m"]),
    ({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta("node-1", "kube-node-lease"),
      "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}, ["node-1", "node-1", "10m"]),
    ({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta("free"), "spec": {}},
     ["free", "", "10m"]),
    ({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("all"),
      "spec": {"podSelector": {}}}, ["all", "<none>", "10m"]),
    ({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("db"),
      "spec": {"podSelector": {"matchExpressions": [{"key": "role", "operator": "NotIn", "values": ["web"]}]}}},
     ["db", "role notin (web)", "10m"]),
    ({"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy", "metadata": meta("deny", None),
      "spec": {"tier": "Admin", "priority": 10}}, ["deny", "Admin", 10, "10m"]),
    ({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta("w", age=90000), "spec": {}}, ["w", "25h"]),
    ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "new"}}, ["new", "", "<unknown>"]),
], ids=["namespace", "configmap", "configmap without data", "secret", "serviceaccount", "lease", "lease unheld",
        "networkpolicy for all", "networkpolicy with an expression", "clusternetworkpolicy", "a kind of no printer",
        "no creationTimestamp"])
def test_simple_rows(obj: dict[str, Any], expected: list[Any]) -> None:
    assert cells(obj) == expected


EVENT_CASES = {
    "core, repeated": (
        {"apiVersion": "v1", "kind": "Event", "metadata": meta("web-1.17f"), "type": "Warning", "reason": "BackOff",
         "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
         "message": "Back-off restarting failed container\n", "firstTimestamp": ago(500), "lastTimestamp": ago(30),
         "count": 7, "source": {"component": "kubelet", "host": "node-1"}},
        ["30s", "Warning", "BackOff", "pod/web-1", "spec.containers{web}", "kubelet, node-1",
         "Back-off restarting failed container", "8m20s", 7, "web-1.17f"]),
    "core, new API singleton": (
        {"apiVersion": "v1", "kind": "Event", "metadata": meta("e"), "type": "Normal", "reason": "Scheduled",
         "involvedObject": {"kind": "Pod", "name": "web-1"}, "message": "Assigned", "eventTime": ago(65),
         "reportingController": "default-scheduler", "reportingInstance": ""},
        ["65s", "Normal", "Scheduled", "pod/web-1", "", "default-scheduler", "Assigned", "65s", 1, "e"]),
    "events.k8s.io with a series": (
        {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta("e2"), "type": "Normal",
         "reason": "ScalingReplicaSet", "regarding": {"kind": "Deployment", "name": "web"}, "note": "Scaled up",
         "eventTime": ago(900), "series": {"count": 4, "lastObservedTime": ago(12)},
         "reportingController": "deployment-controller", "reportingInstance": "cp-1"},
        ["12s", "Normal", "ScalingReplicaSet", "deployment/web", "", "deployment-controller, cp-1", "Scaled up",
         "15m", 4, "e2"]),
    "about a kind, no name": (
        {"apiVersion": "v1", "kind": "Event", "metadata": meta("e3"), "type": "Normal", "reason": "Starting",
         "involvedObject": {"kind": "Node"}, "firstTimestamp": ago(5), "count": 1},
        ["5s", "Normal", "Starting", "node", "", "", "", "5s", 1, "e3"]),
}


@pytest.mark.parametrize("case", EVENT_CASES)
def test_event_row(case: str) -> None:
    obj, expected = EVENT_CASES[case]
    assert cells(obj) == expected


def test_every_printer_makes_as_many_cells_as_columns() -> None:
    for kind, printer in PRINTERS.items():
        table = to_table({"apiVersion": "v1", "kind": kind, "metadata": meta("x")}, NOW)
        assert len(table["rows"][0]["cells"]) == len(printer.columns) == len(table["columnDefinitions"]), kind


@pytest.mark.parametrize(("kind", "columns"), [
    ("Pod", "NAME READY STATUS RESTARTS AGE | IP NODE NOMINATED-NODE READINESS-GATES"),
    ("Node", "NAME STATUS ROLES AGE VERSION | INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME"),
    ("Service", "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE | SELECTOR"),
    ("Deployment", "NAME READY UP-TO-DATE AVAILABLE AGE | CONTAINERS IMAGES SELECTOR"),
    ("ReplicaSet", "NAME DESIRED CURRENT READY AGE | CONTAINERS IMAGES SELECTOR"),
    ("Event", "LAST-SEEN TYPE REASON OBJECT MESSAGE | SUBOBJECT SOURCE FIRST-SEEN COUNT NAME"),
    ("EndpointSlice", "NAME ADDRESSTYPE PORTS ENDPOINTS AGE |"),
    ("Secret", "NAME TYPE DATA AGE |"),
    ("ClusterNetworkPolicy", "NAME TIER PRIORITY AGE |"),
    ("Widget", "NAME AGE |"),
])
def test_columns_and_wide_columns(kind: str, columns: str) -> None:
    definitions = to_table({"kind": kind, "metadata": meta("x")}, NOW)["columnDefinitions"]
    named = [(d["name"].upper().replace(" ", "-"), d["priority"]) for d in definitions]
    text = " ".join(name for name, priority in named if priority == 0) + " | " + " ".join(
        name for name, priority in named if priority == 1)
    assert text.rstrip() == columns


@pytest.mark.parametrize(("kind", "types"), [
    ("Pod", ["string"] * 9),
    ("Deployment", ["string"] * 8),
    ("ReplicaSet", ["string", "integer", "integer", "integer", "string", "string", "string", "string"]),
    ("ClusterNetworkPolicy", ["string", "string", "integer", "date"]),
    ("Widget", ["string", "date"]),
])
def test_column_types_are_kube_apiservers(kind: str, types: list[str]) -> None:
    definitions = to_table({"kind": kind, "metadata": meta("x")}, NOW)["columnDefinitions"]
    assert [d["type"] for d in definitions] == types
    assert definitions[0] | {"description": ""} == {"name": "Name", "type": "string", "format": "name",
                                                     "description": "", "priority": 0}


POD_LIST = {"apiVersion": "v1", "kind": "PodList",
            "metadata": {"resourceVersion": "99", "continue": "eyJ2IjoxfQ", "remainingItemCount": 4},
            "items": [{"metadata": meta("a", labels={"app": "web"}), "spec": {"containers": []}, "status": {}}]}


def test_a_list_keeps_its_list_metadata_and_carries_metadata_by_default() -> None:
    table = to_table(POD_LIST, NOW)
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert table["metadata"] == {"resourceVersion": "99", "continue": "eyJ2IjoxfQ", "remainingItemCount": 4}
    assert table["rows"][0]["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                          "metadata": meta("a", labels={"app": "web"})}


@pytest.mark.parametrize(("include", "carried"), [
    (None, "PartialObjectMetadata"), ("", "PartialObjectMetadata"), ("Metadata", "PartialObjectMetadata"),
    ("Object", "Pod"), ("None", None),
])
def test_include_object(include: str | None, carried: str | None) -> None:
    (row,) = to_table(POD_LIST, NOW, TableOptions.parse(include))["rows"]
    assert (row["object"] or {}).get("kind") == carried
    if carried == "Pod":
        assert row["object"]["apiVersion"] == "v1" and row["object"]["metadata"]["name"] == "a"


def test_one_object_has_its_own_resource_version() -> None:
    obj = POD_LIST["items"][0] | {"apiVersion": "v1", "kind": "Pod"}
    table = to_table(obj, NOW, TableOptions.parse("Object"))
    assert table["metadata"] == {"resourceVersion": "42"}
    assert [row["object"] for row in table["rows"]] == [obj]


def test_an_empty_list_still_has_its_kinds_columns() -> None:
    table = to_table({"apiVersion": "v1", "kind": "ServiceList", "metadata": {"resourceVersion": "7"}, "items": []},
                     NOW)
    assert table["rows"] == [] and table["columnDefinitions"][1]["name"] == "Type"


def test_v1beta1_and_no_headers() -> None:
    table = to_table(POD_LIST, NOW, TableOptions.parse(version="v1beta1", no_headers=True))
    assert table["apiVersion"] == "meta.k8s.io/v1beta1" and table["columnDefinitions"] is None
    assert table["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"


@pytest.mark.parametrize(("include", "version", "message"), [
    ("Everything", "v1", 'unrecognized includeObject value: "Everything"'),
    ("Object", "v2", "no Table exists in group version meta.k8s.io/v2"),
])
def test_bad_table_requests_are_refused(include: str, version: str, message: str) -> None:
    with pytest.raises(TableRequestError, match=message):
        TableOptions.parse(include, version)


def test_default_table_whatever_the_kind() -> None:
    table = default_table(POD_LIST, NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["rows"][0]["cells"] == ["a", "10m"]


def test_now_as_epoch_seconds() -> None:
    assert to_table(POD_LIST, NOW.timestamp())["rows"] == to_table(POD_LIST, NOW)["rows"]


def listing(*items: dict[str, Any], kind: str = "PodList") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "9"}, "items": list(items)}


PODS = listing(
    pod({"phase": "Running", "podIPs": [{"ip": "10.244.1.5"}],
         "containerStatuses": [running("c0"), running("c1", ready=False, restarts=3,
                                                      lastState=ended("Error", 1, finishedAt=ago(125)))]},
        containers=2, spec={"nodeName": "node-1"}) | {"metadata": meta("web-1", labels={"app": "web", "tier": "front"})},
    pod({"phase": "Running", "podIPs": [{"ip": "10.244.2.9"}],
         "containerStatuses": [{"name": "c0", "ready": False, "restartCount": 12,
                                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                "lastState": ended("Error", 1, finishedAt=ago(40))}]},
        spec={"nodeName": "node-2"}) | {"metadata": meta("crash", age=4000)},
    pod({"phase": "Running"}) | {"metadata": meta("going", "default", 90000, deletionTimestamp=ago(3))},
)

RENDER_CASES = {
    "plain": ({}, """\
NAME    READY   STATUS             RESTARTS       AGE
web-1   1/2     Running            3 (2m5s ago)   10m
crash   0/1     CrashLoopBackOff   12 (40s ago)   66m
going   0/1     Terminating        0              25h"""),
    "wide": ({"wide": True}, """\
NAME    READY   STATUS             RESTARTS       AGE   IP           NODE     NOMINATED NODE   READINESS GATES
web-1   1/2     Running            3 (2m5s ago)   10m   10.244.1.5   node-1   <none>           <none>
crash   0/1     CrashLoopBackOff   12 (40s ago)   66m   10.244.2.9   node-2   <none>           <none>
going   0/1     Terminating        0              25h   <none>       <none>   <none>           <none>"""),
    "all namespaces": ({"with_namespace": True}, """\
NAMESPACE   NAME    READY   STATUS             RESTARTS       AGE
apps        web-1   1/2     Running            3 (2m5s ago)   10m
apps        crash   0/1     CrashLoopBackOff   12 (40s ago)   66m
default     going   0/1     Terminating        0              25h"""),
    "labels": ({"show_labels": True}, """\
NAME    READY   STATUS             RESTARTS       AGE   LABELS
web-1   1/2     Running            3 (2m5s ago)   10m   app=web,tier=front
crash   0/1     CrashLoopBackOff   12 (40s ago)   66m   <none>
going   0/1     Terminating        0              25h   <none>"""),
    "label columns, no trailing spaces": ({"label_columns": ["app", "example.com/tier"]}, """\
NAME    READY   STATUS             RESTARTS       AGE   APP   TIER
web-1   1/2     Running            3 (2m5s ago)   10m   web
crash   0/1     CrashLoopBackOff   12 (40s ago)   66m
going   0/1     Terminating        0              25h"""),
    "kind prefix, as for get pods,svc": ({"kind": "pod"}, """\
NAME        READY   STATUS             RESTARTS       AGE
pod/web-1   1/2     Running            3 (2m5s ago)   10m
pod/crash   0/1     CrashLoopBackOff   12 (40s ago)   66m
pod/going   0/1     Terminating        0              25h"""),
}


@pytest.mark.parametrize("case", RENDER_CASES)
def test_render_as_kubectl(case: str) -> None:
    flags, text = RENDER_CASES[case]
    assert render_table(to_table(PODS, NOW), **flags) == text


def test_render_services_wide() -> None:
    table = to_table(listing(SERVICE_CASES["NodePort"][0] | {"metadata": meta("np", age=100)},
                             SERVICE_CASES["LoadBalancer pending"][0] | {"metadata": meta("lb", age=100)},
                             kind="ServiceList"), NOW)
    assert render_table(table, wide=True) == """\
NAME   TYPE           CLUSTER-IP   EXTERNAL-IP   PORT(S)               AGE    SELECTOR
np     NodePort       10.96.0.10   <none>        80:30080/TCP,53/UDP   100s   a=1,b=2
lb     LoadBalancer   10.96.0.10   <pending>     443:31443/TCP         100s   <none>"""


def test_render_cells_kubectls_way() -> None:
    """Six columns at the least; a cell cut at a line break; an escape shown;
    booleans and whole floats as Go prints them; a missing object's namespace blank."""
    table = {"columnDefinitions": [{"name": "X", "type": "string", "format": "name", "priority": 0},
                                   {"name": "Yy", "type": "boolean", "format": "", "priority": 0},
                                   {"name": "Z", "type": "number", "format": "", "priority": 0}],
             "rows": [{"cells": ["multi\nline", True, 3.0], "object": None},
                      {"cells": ["\x1b[31mred", None, 2.5], "object": None}]}
    assert render_table(table, with_namespace=True) == """\
NAMESPACE   X           YY     Z
            multi...    true   3
            ^[[31mred          2.5"""


def test_nothing_found() -> None:
    assert render_table(to_table(listing(), NOW)) == ""
    assert no_resources_found("apps") == "No resources found in apps namespace."
    assert no_resources_found(None) == "No resources found"
