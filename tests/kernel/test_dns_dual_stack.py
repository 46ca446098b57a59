"""`podnet dns` on a dual-stack link: a client asks over IPv4 and IPv6, UDP and
TCP, and the server forwards what its zone lacks to an upstream it reaches over
IPv6 only (the fast path's socket and the slow path's alike)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.rrset
from prometheus_client.parser import text_string_to_metric_families

from podnet.dns.datagrams import Datagrams
from podnet.dns.fastforward import FastForward, plain_question
from podnet.dns.forward import Forwarder
from podnet.kernel import netns
from podnet.model.manifest import parse_resource
from podnet.store import resources
from podnet.store.location import open_store
from tests.helpers import in_netns, within

SERVER4, SERVER6 = "10.53.0.1", "2001:db8::1"  # the cluster DNS, on every address
CLIENT4, UPSTREAM6 = "10.53.0.53", "2001:db8::53"  # a client, and beside it the upstream (IPv6 only)


def start(namespace: str, address: str, port: int, *options: str) -> subprocess.Popen:  # type: ignore[type-arg]
    process = subprocess.Popen(netns.exec_argv(namespace, [sys.executable, "-m", "podnet", "dns", "--port", str(port),
                                                           *options]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def listening() -> bool:
        assert process.poll() is None, f"podnet dns exited: {process.stderr.read() if process.stderr else ''}"
        return in_netns(namespace, "nc", "-z", "-w", "1", address, str(port), check=False).returncode == 0

    assert within(10, listening, interval=0.1), "podnet dns did not start"
    return process


def dig(namespace: str, server: str, *args: str) -> str:
    return in_netns(namespace, "dig", f"@{server}", "+time=2", "+tries=1", "+short", *args, check=False).stdout.strip()


def seed_cluster(path: Path) -> None:
    store = open_store(str(path))
    try:
        resources.put(store, parse_resource({  # type: ignore[arg-type]
            "kind": "Service", "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"clusterIPs": ["10.96.0.20", "fd00:10:96::20"], "ipFamilies": ["IPv4", "IPv6"],
                     "ipFamilyPolicy": "PreferDualStack", "ports": [{"name": "http", "port": 80}]}}))
    finally:
        store.close()


def test_answers_over_both_families_and_forwards_over_ipv6(make_veth_pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, client = make_veth_pair("eth1", f"{SERVER4}/24", f"{CLIENT4}/24")
    for namespace, ifname, address in ((server, "eth1", SERVER6), (client, "eth0", UPSTREAM6)):
        in_netns(namespace, "ip", "-6", "address", "add", f"{address}/64", "dev", ifname, "nodad")
    in_netns(server, "ip", "link", "set", "lo", "up")
    hosts = tmp_path / "upstream-hosts"
    hosts.write_text("".join(f"203.0.113.{i}\tn{i}.example.org\n2001:db8::{i:x}\tn{i}.example.org\n"
                             for i in range(10, 20)))
    start(client, UPSTREAM6, 53, "--listen", UPSTREAM6, "--zone", "", "--hosts", str(hosts))
    seed_cluster(tmp_path / "cluster.db")
    start(server, SERVER6, 53, "--store", str(tmp_path / "cluster.db"), "--forward", f"[{UPSTREAM6}]:53",
          "--metrics", "127.0.0.1:9153")

    for address in (SERVER4, SERVER6):  # the cluster zone, over each family, UDP and TCP
        for transport in ("+notcp", "+tcp"):
            assert dig(client, address, transport, "AAAA", "web.apps.svc.cluster.local") == "fd00:10:96::20"
            assert dig(client, address, transport, "A", "web.apps.svc.cluster.local") == "10.96.0.20"
            assert dig(client, address, transport, "-x", "fd00:10:96::20") == "web.apps.svc.cluster.local."
    # names outside it, from the upstream over IPv6: first asked over UDP (the fast path), then over TCP (the slow)
    assert dig(client, SERVER6, "AAAA", "n10.example.org") == "2001:db8::a"
    assert dig(client, SERVER4, "A", "n11.example.org") == "203.0.113.11"
    assert dig(client, SERVER6, "+tcp", "AAAA", "n12.example.org") == "2001:db8::c"
    assert dig(client, SERVER4, "+tcp", "A", "n13.example.org") == "203.0.113.13"
    assert dig(client, SERVER6, "AAAA", "n10.example.org") == "2001:db8::a"  # a repeat, from the memo

    scraped = {(sample.name, frozenset(sample.labels.items())): sample.value for family in
               text_string_to_metric_families(in_netns(server, "curl", "-s", "http://127.0.0.1:9153/metrics").stdout)
               for sample in family.samples}
    upstream = frozenset({("to", f"[{UPSTREAM6}]:53")})
    assert scraped[("podnet_dns_forward_requests_total", upstream)] >= 4  # n10..n13 (and the loop check's probe)
    assert scraped[("podnet_dns_forward_failures_total", upstream)] == 0

    def requests(proto: str, family: str, rdtype: str) -> float:
        labels = {"server": "dns://:53", "zone": ".", "view": "", "proto": proto, "family": family, "type": rdtype}
        return scraped.get(("coredns_dns_requests_total", frozenset(labels.items())), 0)

    assert requests("udp", "2", "AAAA") == 3 and requests("tcp", "2", "AAAA") == 2
    assert requests("udp", "1", "A") == 2 and requests("tcp", "1", "A") == 2


UPSTREAM_LOOP, SERVER_LOOP = ("::1", 5399), ("::1", 5398)


def _fast_path_over_ipv6() -> tuple[bytes, list[tuple[bytes, tuple, tuple[str, int]]]]:  # type: ignore[type-arg]
    """A client and an upstream on ::1: the query goes out on an IPv6 socket, its
    reply comes back to the client's IPv6 address; one never answered goes the
    slow way with the client's IPv6 address for the reply."""
    upstream, server, client = (socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) for _ in range(3))
    upstream.bind(UPSTREAM_LOOP)
    server.bind(SERVER_LOOP)
    client.bind(("::1", 0))
    for sock in (upstream, client):
        sock.settimeout(2)
    slow: list[tuple[bytes, tuple, tuple[str, int]]] = []  # type: ignore[type-arg]
    fast = FastForward(Forwarder([UPSTREAM_LOOP], timeout=0.3), socket.AF_INET6, lambda q, k, r: None,
                       lambda q, c, u: slow.append((q, c, u)))
    incoming = Datagrams(server)
    (fd,) = fast.sockets
    assert fast.sockets[fd][1].sock.family == socket.AF_INET6

    def ask(name: str) -> bytes:
        client.sendto(dns.message.make_query(name, "AAAA").to_wire(), SERVER_LOOP)
        (data,) = incoming.receive()
        fast.send(data, plain_question(data).key, incoming.name_of(0), time.monotonic())  # type: ignore[union-attr]
        fast.flush()
        sent, _ = upstream.recvfrom(512)
        return sent

    sent = ask("one.example.org")
    reply = dns.message.make_response(dns.message.from_wire(sent))
    reply.answer.append(dns.rrset.from_text("one.example.org.", 60, "IN", "AAAA", "2001:db8::10"))
    upstream.sendto(reply.to_wire(), fast.sockets[fd][1].sock.getsockname())
    time.sleep(0.05)
    fast.read(fd, incoming)
    incoming.send()
    answer = client.recv(512)
    ask("two.example.org")  # never answered
    time.sleep(0.45)
    fast.sweep()
    fast.close()
    client_address = client.getsockname()
    for sock in (upstream, server, client):
        sock.close()
    return answer, [(q, c, u) for q, c, u in slow if c[:2] == client_address[:2]]


def test_the_fast_path_forwards_over_ipv6(make_netns) -> None:  # type: ignore[no-untyped-def]
    name = make_netns()
    in_netns(name, "ip", "link", "set", "lo", "up")
    answer, slow = netns.run_in(name, _fast_path_over_ipv6)
    assert [r.to_text() for rrset in dns.message.from_wire(answer).answer for r in rrset] == ["2001:db8::10"]
    assert [(dns.message.from_wire(q).question[0].name.to_text(), u) for q, _, u in slow] == [
        ("two.example.org.", UPSTREAM_LOOP)]
