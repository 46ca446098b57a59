"""Services in each proxy mode, with real connections: ClusterIP load balancing,
session affinity, NodePort with both traffic policies, hairpin, and rejects."""

from __future__ import annotations

import dataclasses

import collections
import json
import time
from collections.abc import Iterator

import pytest
import yaml

from tests.helpers import in_netns, podnet, renamed_example, within

MODES = {"test_services": "nftables", "test_svc-ipt": "iptables", "test_svc-us": "userspace"}  # lab -> proxyMode
LAB = "test_services"  # the lab of the mode being tested
RESET = (7, 55, 56)  # curl's "refused", and "reset once accepted" while sending or receiving (the userspace
# proxy accepts, then resets)


@pytest.fixture(scope="module", params=list(MODES))
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict]]:  # type: ignore[type-arg]
    """The same services in each proxy mode: podnet's nftables table, kube-proxy's
    iptables layout, and every port proxied in the agents."""
    global LAB
    LAB = request.param
    path = renamed_example("services.yaml", LAB, tmp_path_factory.mktemp("services"))
    documents = list(yaml.safe_load_all(path.read_text()))
    documents[0].setdefault("networking", {})["proxyMode"] = MODES[LAB]
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    podnet("lab", "up", str(path))
    try:
        services = json.loads(podnet("get", "svc", "-A", "--lab", LAB, "-o", "json").stdout)["items"]
        yield {s["metadata"]["name"]: s for s in services}
    finally:
        podnet("lab", "down", LAB)


def pod_ns(name: str) -> str:
    return f"pn-{LAB}.default.{name}"


def only_in_nftables(why: str) -> None:
    if MODES[LAB] != "nftables":
        pytest.skip(f"{MODES[LAB]} mode: {why}")


def userspace() -> bool:
    """kube-proxy's userspace mode connects to the endpoint from the node, so no
    endpoint sees the client's own address."""
    return MODES[LAB] == "userspace"


def answers(namespace: str, url: str, count: int) -> list[dict]:  # type: ignore[type-arg]
    """count fresh connections from one namespace, each answer parsed."""
    script = f'for i in $(seq {count}); do curl -s -m 2 {url}; echo "<>"; done'
    out = in_netns(namespace, "sh", "-c", script, timeout=120).stdout
    return [json.loads(chunk) for chunk in out.split("<>") if chunk.strip()]


def cluster_ip(lab: dict, name: str) -> str:  # type: ignore[type-arg]
    return lab[name]["spec"]["clusterIP"]


def eventually(check, timeout: float = 3.0) -> None:  # type: ignore[no-untyped-def]
    assert within(timeout, check, 0.1), "not reached in time"


def test_cluster_ip_spreads_connections_at_random(lab: dict) -> None:  # type: ignore[type-arg]
    eventually(lambda: len(answers(pod_ns("client"), f"http://{cluster_ip(lab, 'web')}/", 1)) == 1)
    got = answers(pod_ns("client"), f"http://{cluster_ip(lab, 'web')}/", 300)
    assert len(got) == 300
    counts = collections.Counter(a["pod"] for a in got)
    assert set(counts) == {"web-0", "web-1", "web-2"}
    for pod, n in counts.items():
        assert 70 <= n <= 130, counts  # 33 % +- 10 %
    client_ip = json.loads(podnet("get", "pod", "--lab", LAB, "client", "-o", "json").stdout)["status"]["podIP"]
    if userspace():
        assert client_ip not in {a["origin"] for a in got}  # the node's proxy connects on the client's behalf
        assert counts == {"web-0": 100, "web-1": 100, "web-2": 100}  # its default scheduler: round robin
    else:
        assert {a["origin"] for a in got} == {client_ip}  # no NAT inside the cluster


def test_client_ip_affinity_sticks(lab: dict) -> None:  # type: ignore[type-arg]
    got = answers(pod_ns("client"), f"http://{cluster_ip(lab, 'sticky')}/", 15)
    assert len(got) == 15 and len({a["pod"] for a in got}) == 1


def test_node_port_masquerades_with_the_cluster_policy(lab: dict) -> None:  # type: ignore[type-arg]
    fabric = f"pn-{LAB}"
    for node_ip, gateway in (("172.18.0.2", "10.244.0.1"), ("172.18.0.3", "10.244.1.1"), ("172.18.0.4", "10.244.2.1")):
        for answer in answers(fabric, f"http://{node_ip}:30080/", 6):
            # masqueraded behind the node: its uplink address, or its pod bridge's for a local endpoint
            assert answer["pod"].startswith("web-") and answer["origin"] in (node_ip, gateway), answer
    on_localhost = in_netns(f"pn-{LAB}.node1", "curl", "-s", "-m", "1", "http://127.0.0.1:30080/", check=False)
    # kube-proxy's nftables and iptables modes (route_localnet off) keep node ports off localhost; its
    # userspace mode listened on every address, localhost too
    assert (on_localhost.returncode == 0) == userspace()


def test_node_port_with_the_local_policy(lab: dict) -> None:  # type: ignore[type-arg]
    fabric = f"pn-{LAB}"
    if userspace():  # only local endpoints, but from the node's address; none here: refused
        eventually(lambda: [a["pod"] for a in answers(fabric, "http://172.18.0.2:30081/", 1)] == ["solo"])
        assert in_netns(fabric, "curl", "-s", "-m", "1", "http://172.18.0.3:30081/", check=False).returncode in RESET
        return
    answer = answers(fabric, "http://172.18.0.2:30081/", 1)[0]  # node1 runs solo
    assert answer["pod"] == "solo" and answer["origin"] == "172.18.0.1"  # the client's own address
    dropped = in_netns(fabric, "curl", "-s", "-m", "1", "http://172.18.0.3:30081/", check=False)
    assert dropped.returncode == 28  # node2 has no local endpoint: dropped, not forwarded


def test_a_pod_reaches_itself_through_its_service(lab: dict) -> None:  # type: ignore[type-arg]
    got = answers(pod_ns("web-0"), f"http://{cluster_ip(lab, 'web')}/", 30)
    mine = [a for a in got if a["pod"] == "web-0"]
    assert mine, "web-0 was never picked in 30 tries"
    assert all(a["origin"] != a["ip"] for a in mine)  # masqueraded, so the reply comes back through the node


def test_rejects_are_immediate(lab: dict) -> None:  # type: ignore[type-arg]
    urls = [f"http://{cluster_ip(lab, 'nobody')}/"]
    if MODES[LAB] != "iptables":  # kube-proxy's iptables mode leaves a port the service lacks alone
        urls.append(f"http://{cluster_ip(lab, 'web')}:81/")
    for url in urls:
        started = time.monotonic()
        proc = in_netns(pod_ns("client"), "curl", "-s", "-m", "3", url, check=False)
        assert proc.returncode in RESET, url  # refused (a TCP reset), not a timeout
        assert time.monotonic() - started < 1.0
    udp = in_netns(pod_ns("client"), "sh", "-c", f"echo x | nc -u -w1 {cluster_ip(lab, 'nobody')} 80; echo $?", check=False)
    assert udp.returncode == 0


def test_get_svc_lists_types_and_ports_as_kubectl(lab: dict) -> None:  # type: ignore[type-arg]
    out = podnet("get", "svc", "--lab", LAB).stdout
    assert out.split("\n")[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert "80:30080/TCP" in out and "<none>" in out and "NodePort" in out


@pytest.fixture
def store(lab: dict) -> Iterator[object]:  # type: ignore[type-arg]
    from podnet.lab.state import load
    from podnet.store.location import open_store

    record = load(LAB)
    assert record is not None
    handle = open_store(record.store)
    yield handle
    handle.close()


def _get(connection, path: str = "/") -> dict:  # type: ignore[no-untyped-def, type-arg]
    connection.request("GET", path, headers={"Connection": "keep-alive"})
    return json.loads(connection.getresponse().read())


def test_endpoint_changes_take_effect_within_a_second(lab: dict, store) -> None:  # type: ignore[no-untyped-def, type-arg]
    """Removing an endpoint stops new connections to it within 1 s while an
    established connection to it keeps working; a new matching pod gets traffic
    within 1 s."""
    import http.client
    import socket

    from podnet.kernel import netns
    from podnet.model.pod import Pod
    from podnet.store import resources

    ip = cluster_ip(lab, "web-nodeport")  # its targetPort is a number, which solo serves too
    connection = http.client.HTTPConnection(ip, 80, timeout=3)
    connection.sock = netns.run_in(pod_ns("client"), lambda: socket.create_connection((ip, 80), timeout=3))
    first = _get(connection)["pod"]
    removed = resources.get(store, Pod, "default", first)
    solo = resources.get(store, Pod, "default", "solo")
    assert isinstance(removed, Pod) and isinstance(solo, Pod)
    try:
        # Out of the service by its labels: the pod runs on (so the open connection can show it still
        # reaches it); its deployment lets it go and starts another in its place.
        resources.put(store, dataclasses.replace(removed, metadata=dataclasses.replace(
            removed.metadata, labels={"app": "gone"})))
        relabelled = Pod(type(solo.metadata)(solo.metadata.name, "default", {"app": "web"}), solo.containers,
                         solo.node_name, pod_ips=solo.pod_ips, host_ip=solo.host_ip, ready=True)
        resources.put(store, relabelled)
        time.sleep(1.0)
        got = collections.Counter(a["pod"] for a in answers(pod_ns("client"), f"http://{ip}/", 60))
        assert first not in got and "solo" in got, got
        assert _get(connection)["pod"] == first  # the established connection still reaches it
    finally:
        connection.close()
        resources.put(store, removed)
        resources.put(store, solo)


def test_udp_flows_follow_their_endpoint_away(lab: dict, store) -> None:  # type: ignore[no-untyped-def, type-arg]
    """A client on a fixed source port (as a DNS resolver is) reaches another
    endpoint with its next datagram once its endpoint is gone."""
    import socket

    from podnet.kernel import netns
    from podnet.model.pod import Pod
    from podnet.store import resources

    target = (cluster_ip(lab, "web-udp"), 53)

    def client_socket() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", 5353))
        sock.settimeout(2)
        return sock

    sock = netns.run_in(pod_ns("client"), client_socket)
    try:
        sock.sendto(b"one", target)
        first = json.loads(sock.recv(4096))["pod"]
        sock.sendto(b"two", target)
        assert json.loads(sock.recv(4096))["pod"] == first  # conntrack keeps the flow on one endpoint
        removed = resources.get(store, Pod, "default", first)
        assert removed is not None
        resources.put(store, dataclasses.replace(removed, metadata=dataclasses.replace(
            removed.metadata, labels={"app": "gone"})))  # out of the service, still running
        try:
            time.sleep(1.0)
            sock.sendto(b"three", target)
            assert json.loads(sock.recv(4096))["pod"] != first
        finally:
            resources.put(store, removed)
    finally:
        sock.close()


def test_internal_traffic_policy_local_stays_on_the_node(lab: dict) -> None:  # type: ignore[type-arg]
    """client runs on node3, where web-2 is the only web pod."""
    got = answers(pod_ns("client"), f"http://{cluster_ip(lab, 'web-local')}/", 20)
    assert {a["pod"] for a in got} == {"web-2"}


def test_external_and_load_balancer_ips(lab: dict) -> None:  # type: ignore[type-arg]
    """Traffic to an external IP or a load balancer IP, routed to a node, reaches the
    service; loadBalancerSourceRanges keeps out sources not listed."""
    fabric = f"pn-{LAB}"
    for address in ("203.0.113.50", "203.0.113.60"):
        in_netns(fabric, "ip", "route", "replace", f"{address}/32", "via", "172.18.0.2")
    answer = answers(fabric, "http://203.0.113.50:8080/", 1)[0]
    assert answer["pod"].startswith("web-") and answer["origin"] != "172.18.0.1"  # Cluster policy masquerades
    assert answers(fabric, "http://203.0.113.60/", 1)[0]["pod"].startswith("web-")  # 172.18.0.0/24 is allowed
    refused = in_netns(pod_ns("client"), "curl", "-s", "-m", "1", "http://203.0.113.60/", check=False)
    # a pod address is not in the source ranges: dropped (the userspace proxy resets it)
    assert refused.returncode in (RESET if userspace() else (28,))


def test_the_proxy_repairs_a_deleted_table(lab: dict, store) -> None:  # type: ignore[no-untyped-def, type-arg]
    """Drift: the table deleted by hand comes back with the next change (or resync)."""
    only_in_nftables("this test deletes podnet's nftables service table, which this mode does not write")
    from podnet.model.pod import Pod
    from podnet.store import resources

    node = f"pn-{LAB}.node3"
    in_netns(node, "nft", "delete", "table", "ip", "podnet-proxy")
    solo = resources.get(store, Pod, "default", "solo")
    assert solo is not None
    resources.put(store, solo)  # any change makes the agent reconcile
    eventually(lambda: "podnet-proxy" in in_netns(node, "nft", "list", "tables").stdout, timeout=12)
    assert answers(pod_ns("client"), f"http://{cluster_ip(lab, 'web')}/", 1)


def test_iptables_mode_lists_the_service_as_the_seed_shows(lab: dict) -> None:  # type: ignore[type-arg]
    """`iptables -L -t nat | grep web` on a node, as the seed greps for db-service."""
    if MODES[LAB] != "iptables":
        pytest.skip(f"the {MODES[LAB]} mode writes no iptables rules")
    listed = in_netns(f"pn-{LAB}.node1", "iptables-nft", "-t", "nat", "-L", "-n").stdout
    mine = [line for line in listed.splitlines() if "default/web:" in line]
    assert any(line.startswith("KUBE-SVC-") for line in mine) and any(line.startswith("DNAT") for line in mine)
    assert any("statistic mode random probability" in line for line in mine)
