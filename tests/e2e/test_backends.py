"""Many nodes: each backend (host-gw, vxlan), underlay (one L2 segment, or a
subnet per node behind a router, where only vxlan can work) and store (SQLite,
or a three-member etcd cluster) carries pod traffic across nodes without NAT,
masquerades egress behind the node, lets nodes join and leave, and keeps working
while agents (or an etcd member) die."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
import yaml

from podnet.kernel import netns
from tests.helpers import agent_pid, in_netns, kill_agent, podnet, within

LABS = {  # lab name: (backend, underlay, store)
    "test_hostgw": ("host-gw", "bridged", "sqlite"),
    "test_vxlan": ("vxlan", "bridged", "sqlite"),
    "test_vxrouted": ("vxlan", "routed", "sqlite"),
    "test_hgetcd": ("host-gw", "bridged", "etcd"),
    "test_vxetcd": ("vxlan", "bridged", "etcd"),
}


@pytest.fixture(scope="module", params=list(LABS))
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = request.param
    backend, underlay, store = LABS[name]
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod},
             "spec": {"nodeName": node, "containers": [{"name": "echo", "image": "podnet/echo"}]}}
            for pod, node in (("a", "n1"), ("b", "n2"))]
    document = {"apiVersion": "podnet.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": name}, "store": store,
                "networking": {"backend": backend, "underlay": underlay},
                "nodes": [{"name": "n1"}, {"name": "n2"}], "workloads": pods}
    path = tmp_path_factory.mktemp("backends") / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    podnet("lab", "up", str(path))
    yield name
    podnet("lab", "down", name)


def pod_ip(lab: str, name: str) -> str:
    listing = json.loads(podnet("get", "pods", "-A", "--lab", lab, "-o", "json").stdout)
    return next(p["status"]["podIP"] for p in listing["items"] if p["metadata"]["name"] == name)


def node_ip(lab: str, name: str) -> str:
    listing = json.loads(podnet("get", "nodes", "--lab", lab, "-o", "json").stdout)
    return next(n["status"]["addresses"][0]["address"] for n in listing["items"] if n["metadata"]["name"] == name)


def curl(lab: str, pod: str, url: str) -> dict:  # type: ignore[type-arg]
    return json.loads(in_netns(f"pn-{lab}.default.{pod}", "curl", "-s", "-m", "5", url).stdout)


def test_pods_on_different_nodes_talk_without_nat(lab: str) -> None:
    answer = curl(lab, "a", f"http://{pod_ip(lab, 'b')}/get")
    assert answer["pod"] == "b" and answer["origin"] == pod_ip(lab, "a")


def test_egress_leaves_behind_the_node_ip(lab: str) -> None:
    assert curl(lab, "b", "http://www.example.org/get")["origin"] == node_ip(lab, "n2")


def test_vxlan_carries_pod_traffic_in_udp_8472_with_room_for_the_header(lab: str) -> None:
    if LABS[lab][0] != "vxlan":
        pytest.skip("host-gw routes pod packets as they are")
    assert "mtu 1450" in in_netns(f"pn-{lab}.default.a", "ip", "link", "show", "eth0").stdout
    capture = subprocess.Popen(netns.exec_argv(f"pn-{lab}.n2", ["tcpdump", "-ni", "eth0", "-c", "3", "udp", "port", "8472"]),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.5)
    in_netns(f"pn-{lab}.default.a", "ping", "-c", "3", "-i", "0.2", pod_ip(lab, "b"))
    out, _ = capture.communicate(timeout=10)
    inner = f"{pod_ip(lab, 'a')} > {pod_ip(lab, 'b')}: ICMP echo request"
    assert inner in out and out.count(".8472: ") == 3, out  # the pods' packets, inside UDP to 8472


def test_the_dataplane_outlives_its_agents_and_a_restart_disturbs_no_flow(lab: str) -> None:
    target = pod_ip(lab, "b")
    pinger = subprocess.Popen(netns.exec_argv(f"pn-{lab}.default.a", ["ping", "-i", "0.1", "-w", "4", target]),
                              stdout=subprocess.PIPE, text=True)
    starts = [kill_agent(lab, node) for node in ("n1", "n2")]
    time.sleep(1)
    assert curl(lab, "a", f"http://{target}/get")["pod"] == "b"  # no agent anywhere, traffic flows
    for start in starts:
        start()
    out, _ = pinger.communicate(timeout=10)
    assert " 0% packet loss" in out, out  # through the kills and the restarts
    assert within(5.0, lambda: all(agent_pid(lab, node) for node in ("n1", "n2")))  # their supervisors restarted them


def peer_routes(lab: str, node: str) -> str:
    return in_netns(f"pn-{lab}.{node}", "ip", "route", "show", "proto", "152").stdout


def test_nodes_join_and_leave_and_peers_follow_within_a_second(lab: str) -> None:
    joined = podnet("lab", "node", "add", lab, "n3").stdout
    subnet = joined.split("pods in ")[1].split()[0]
    assert within(1.0, lambda: subnet in peer_routes(lab, "n1"))
    gateway = subnet.replace(".0/24", ".1")
    in_netns(f"pn-{lab}.default.a", "ping", "-c", "1", "-W", "2", gateway)  # the new node's bridge, across
    assert podnet("lab", "node", "add", lab, "n3", check=False).returncode != 0  # no second n3
    podnet("lab", "node", "remove", lab, "n3")
    assert within(1.0, lambda: subnet not in peer_routes(lab, "n1"))
    if LABS[lab][0] == "vxlan":
        fdb = in_netns(f"pn-{lab}.n1", "bridge", "fdb", "show", "dev", "podnet.1").stdout
        assert re.findall(r"dst (\S+)", fdb) == [node_ip(lab, "n2")]  # n3's entry went with it


def test_a_node_that_was_down_while_another_left_drops_the_stale_entries_when_it_starts(lab: str) -> None:
    joined = podnet("lab", "node", "add", lab, "n4").stdout
    subnet = joined.split("pods in ")[1].split()[0]
    assert within(1.0, lambda: subnet in peer_routes(lab, "n1"))
    start = kill_agent(lab, "n1")
    podnet("lab", "node", "remove", lab, "n4")
    time.sleep(0.5)
    assert subnet in peer_routes(lab, "n1")  # nobody there to notice
    start()
    assert within(3.0, lambda: subnet not in peer_routes(lab, "n1"))
    assert curl(lab, "a", f"http://{pod_ip(lab, 'b')}/get")["pod"] == "b"


def test_with_one_etcd_member_dead_traffic_and_changes_still_flow(lab: str) -> None:
    if LABS[lab][2] != "etcd":
        pytest.skip("a SQLite store has no members")
    member = subprocess.run(["pgrep", "-f", f"etcd --name etcd-0 .*--initial-cluster-token {lab}$"],
                            capture_output=True, text=True).stdout.split()
    assert len(member) == 1, member
    os.kill(int(member[0]), signal.SIGKILL)
    assert curl(lab, "a", f"http://{pod_ip(lab, 'b')}/get")["pod"] == "b"
    joined = podnet("lab", "node", "add", lab, "n5").stdout  # a write needs a quorum: two of three will do
    subnet = joined.split("pods in ")[1].split()[0]
    # The first member is often etcd's leader: an agent's read that began during the election waits out its
    # 2 s timeout, so peers follow within a few seconds here, not the second they take with every member up.
    # Agents and the control plane each read the store on every pass, so a read can meet the election twice.
    assert within(8.0, lambda: subnet in peer_routes(lab, "n1"))
    podnet("lab", "node", "remove", lab, "n5")
    assert within(5.0, lambda: subnet not in peer_routes(lab, "n1"))
