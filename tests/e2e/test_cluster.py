"""The demo cluster: pods on three nodes reach each other by IP, without NAT."""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers import curl_json, in_netns, podnet


def pods(lab: str) -> dict[str, dict]:  # type: ignore[type-arg]
    listing = json.loads(podnet("get", "pods", "-A", "--lab", lab, "-o", "json").stdout)
    return {item["metadata"]["name"]: item for item in listing["items"]}


def netns_of(lab: str, pod: dict) -> str:  # type: ignore[type-arg]
    return f"pn-{lab}.{pod['metadata'].get('namespace', 'default')}.{pod['metadata']['name']}"


def test_every_pod_is_ready_with_an_ip_from_its_node(cluster_lab: str) -> None:
    listed = {name: pod for name, pod in pods(cluster_lab).items() if pod["metadata"]["namespace"] != "kube-system"}
    assert len(listed) == 8  # client, six web replicas, db-0
    nodes = {n["metadata"]["name"]: n for n in json.loads(podnet("get", "nodes", "--lab", cluster_lab, "-o", "json").stdout)["items"]}
    assert len({p["spec"]["nodeName"] for p in listed.values()}) == 3
    for pod in listed.values():
        assert {"type": "Ready", "status": "True"} in pod["status"]["conditions"]  # among kubelet's five
        cidr = nodes[pod["spec"]["nodeName"]]["spec"]["podCIDR"]
        assert pod["status"]["podIP"].rsplit(".", 1)[0] == cidr.rsplit(".", 1)[0]


def test_cross_node_curl_sees_the_callers_real_pod_ip(cluster_lab: str) -> None:
    listed = pods(cluster_lab)
    client = listed["client"]
    others = [p for p in listed.values() if p["spec"]["nodeName"] != client["spec"]["nodeName"]]
    assert others
    for target in others:
        answer = curl_json(netns_of(cluster_lab, client), f"http://{target['status']['podIP']}/get?from=client")
        assert answer["pod"] == target["metadata"]["name"]
        assert answer["ip"] == target["status"]["podIP"]
        assert answer["origin"] == client["status"]["podIP"]  # no NAT between pods
        assert answer["args"] == {"from": "client"}


def test_same_node_and_ping_and_exec(cluster_lab: str) -> None:
    listed = pods(cluster_lab)
    client = listed["client"]
    neighbour = next(p for p in listed.values() if p["spec"]["nodeName"] == client["spec"]["nodeName"] and p is not client)
    out = podnet("exec", "--lab", cluster_lab, "client", "--", "ping", "-c1", "-W2", neighbour["status"]["podIP"]).stdout
    assert "1 received" in out
    out = podnet("exec", "--lab", cluster_lab, "-n", "apps", "web-1", "--", "ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert listed["web-1"]["status"]["podIP"] in out


def test_status_shows_tables(cluster_lab: str) -> None:
    out = podnet("lab", "status", cluster_lab).stdout
    for heading in ("NAME", "INTERNAL-IP", "POD-CIDR", "READY", "CLUSTER-IP", "web-service", "control-plane"):
        assert heading in out
    assert podnet("get", "pod", "--lab", cluster_lab, "client", "-o", "jsonpath={.status.podIP}").stdout.startswith("10.244.")


def test_get_reads_one_namespace_as_kubectl_does(cluster_lab: str) -> None:
    default = podnet("get", "pods", "--lab", cluster_lab, "-o", "jsonpath={.items[*].metadata.name}").stdout
    assert default.split() == ["client"]
    apps = podnet("get", "pods", "-n", "apps", "--lab", cluster_lab, "-o",
                  "jsonpath={range .items[*]}{.metadata.name}={.status.podIP}{'\\n'}{end}").stdout
    rows = dict(line.split("=") for line in apps.splitlines())
    assert {f"web-{i}" for i in range(6)} <= set(rows) and all(ip.startswith("10.244.") for ip in rows.values())
    everywhere = podnet("get", "pods", "-A", "--lab", cluster_lab, "-o", "name").stdout.split()
    assert "pod/client" in everywhere and "pod/web-0" in everywhere and len(everywhere) > len(rows)
    missing = podnet("get", "pod", "web-0", "--lab", cluster_lab, check=False)
    assert (missing.returncode, missing.stderr) == (1, 'Error from server (NotFound): pods "web-0" not found\n')


def test_agent_repairs_a_deleted_route(cluster_lab: str) -> None:
    node = f"pn-{cluster_lab}.worker"
    routes = in_netns(node, "ip", "route", "show", "proto", "152").stdout.splitlines()
    assert len(routes) == 2  # one per other node
    victim = routes[0].split()[0]
    in_netns(node, "ip", "route", "del", victim)
    deadline = time.monotonic() + 5
    while victim not in in_netns(node, "ip", "route").stdout:
        assert time.monotonic() < deadline, f"route {victim} was not restored"
        time.sleep(0.1)


@pytest.mark.parametrize("sysctl", ["net.ipv4.ip_forward"])
def test_nodes_forward_and_pods_route_via_their_gateway(cluster_lab: str, sysctl: str) -> None:
    assert in_netns(f"pn-{cluster_lab}.worker", "sysctl", "-n", sysctl).stdout.strip() == "1"
    client = pods(cluster_lab)["client"]
    route = in_netns(netns_of(cluster_lab, client), "ip", "route", "show", "default").stdout
    assert route.startswith("default via 10.244.0.1 dev eth0")


def wait_for(predicate, timeout: float = 2.0) -> float:  # type: ignore[no-untyped-def]
    """Seconds until predicate() holds; fails after timeout."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "condition not reached in time"
        time.sleep(0.05)
    return time.monotonic() - started


def test_agents_follow_node_changes_in_the_store(cluster_lab: str) -> None:
    """A node appearing in the store gets a route on every node within 1 s, and
    its removal takes the route away again: the agents watch the store."""
    from podnet.lab.state import load
    from podnet.model.meta import ObjectMeta
    from podnet.model.node import Node
    from podnet.store import resources
    from podnet.store.location import open_store

    record = load(cluster_lab)
    assert record is not None
    store = open_store(record.store)
    ghost = Node(ObjectMeta("ghost", namespace=""), ("10.244.200.0/24",), ("172.18.0.200",))
    nodes = [f"pn-{cluster_lab}.{name}" for name in ("control-plane", "worker", "worker2")]

    def routed() -> bool:
        return all("10.244.200.0/24 via 172.18.0.200" in in_netns(ns, "ip", "route").stdout for ns in nodes)

    try:
        resources.put(store, ghost)
        assert wait_for(routed) < 1.5
    finally:
        resources.delete(store, ghost)
        store.close()
    wait_for(lambda: not any("10.244.200.0" in in_netns(ns, "ip", "route").stdout for ns in nodes))
