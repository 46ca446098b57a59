"""Flow records from logged packets and conntrack entries: what each prefix means,
how a packet is joined to its entry (and recorded without one when it does not
come), what the numbering says was lost, and observe's filters; and IPv6: a
logged IPv6 packet and an IPv6 conntrack event as the kernel sends them, a
connection to a Service's IPv6 ClusterIP named and joined as IPv4's are, and
filters on IPv6 addresses and CIDRs."""

from __future__ import annotations

import socket
import struct

import pytest

from podnet.store.snapshot import Snapshot
from podnet.observe.filter import FilterError, flow_filter
from podnet.kernel.conntrack import Event, Tuple, parse_event
from podnet.kernel.nflog import Logged, parse_packet
from podnet.kernel.nlmsg import attr, be32, nest
from podnet.model.meta import ObjectMeta
from podnet.model.namespace import Namespace
from podnet.model.node import Node
from podnet.model.pod import Container, Pod
from podnet.model.service import Service, ServicePort
from podnet.observe.flows import (DROPPED, FORWARDED, REJECTED, TRANSLATED, Correlator, Directory, Flow, FlowLog,
                                  flow_of)
from tests.policy_model import policy

CLIENT, WEB, NODE = "10.244.0.2", "10.244.1.3", "172.18.0.2"
CLIENT6, WEB6, NODE6, SERVICE6 = "fd00:10:244::2", "fd00:10:244:1::3", "fc00:f853::2", "fd00:10:96::20"


def directory_nodes() -> list[Node]:
    return [Node(ObjectMeta("n1", namespace=""), ("10.244.0.0/24", "fd00:10:244::/64"), (NODE, NODE6))]


def directory() -> Directory:
    pods = [Pod(ObjectMeta("client", "default", labels={"app": "client"}), (Container("c"),), node_name="n1",
                pod_ips=(CLIENT, CLIENT6), ready=True),
            Pod(ObjectMeta("web-1", "apps", labels={"app": "web"}), (Container("c"),), node_name="n2",
                pod_ips=(WEB, WEB6), ready=True)]
    services = [Service(ObjectMeta("web", "apps"), "NodePort", {"app": "web"},
                        (ServicePort(80, 8080, name="http", node_port=30080),), ("10.96.0.20", SERVICE6),
                        ip_families=("IPv4", "IPv6"), ip_family_policy="PreferDualStack")]
    nodes = directory_nodes()
    deny = policy("kind: NetworkPolicy\nmetadata: {name: deny, namespace: apps}\nspec: {podSelector: {}}\n")
    namespaces = [Namespace(ObjectMeta(n, namespace="")).labelled() for n in ("default", "apps")]
    return Directory(Snapshot(1, nodes, pods, services, [], namespaces, [deny]))


def logged(prefix: str, source: str, destination: str, port: int, source_port: int = 40000,
           sequence: int | None = None) -> Logged:
    return Logged(1.0, prefix, source, destination, "TCP", port, source_port, "SYN", sequence)


def entry(original: tuple[str, int, str, int], reply: tuple[str, int, str, int], kind: str = "new") -> Event:
    return Event(kind, 7, Tuple(6, original[0], original[2], original[1], original[3]),
                 Tuple(6, reply[0], reply[2], reply[1], reply[3]))


def test_a_service_connection_is_translated_to_its_endpoint() -> None:
    through = entry((CLIENT, 40000, "10.96.0.20", 80), (WEB, 8080, CLIENT, 40000))
    flow = flow_of(logged("flow", CLIENT, WEB, 8080), "n1", directory(), through)
    assert (flow.verdict, flow.source_pod, flow.service, flow.endpoint, flow.endpoint_pod) == \
        (TRANSLATED, "default/client", "apps/web:http", f"{WEB}:8080", "apps/web-1")
    assert flow.destination == "10.96.0.20" and flow.destination_port == 80 and not flow.masqueraded_to


def test_a_node_port_from_outside_is_masqueraded() -> None:
    through = entry(("203.0.113.10", 5000, NODE, 30080), (WEB, 8080, NODE, 61000))
    flow = flow_of(logged("flow", NODE, WEB, 8080, 61000), "n1", directory(), through)
    assert flow.service == "apps/web:http" and flow.masqueraded_to == NODE and flow.destination_node == "n1"


def test_a_plain_connection_is_forwarded() -> None:
    flow = flow_of(logged("flow", CLIENT, WEB, 8080), "n2", directory(),
                   entry((CLIENT, 40000, WEB, 8080), (WEB, 8080, CLIENT, 40000)))
    assert (flow.verdict, flow.destination_pod, flow.service, flow.endpoint) == (FORWARDED, "apps/web-1", "", "")


def test_drops_and_refusals_say_why() -> None:
    dropped = flow_of(logged("drop ingress", CLIENT, WEB, 8080), "n2", directory())
    assert (dropped.verdict, dropped.reason, dropped.policy) == (DROPPED, "policy", "apps/deny (ingress)")
    named = flow_of(logged("drop egress cnp/no-z", CLIENT, WEB, 8080), "n1", directory())
    assert named.policy == "cnp/no-z (egress)"
    refused = flow_of(logged("reject no-endpoints", CLIENT, "10.96.0.20", 80), "n1", directory())
    assert (refused.verdict, refused.reason, refused.service) == (REJECTED, "no endpoints", "apps/web:http")


def test_the_correlator_joins_either_order_and_gives_up_in_time() -> None:
    correlator = Correlator(wait=0.25)
    packet = logged("flow", CLIENT, WEB, 8080, sequence=1)
    correlator.packet(packet, now=0.0)
    assert correlator.ready(0.1) == []
    through = entry((CLIENT, 40000, "10.96.0.20", 80), (WEB, 8080, CLIENT, 40000))
    correlator.entry(through, now=0.12)
    assert correlator.ready(0.12) == [(1, packet, through)]
    correlator.entry(entry(("10.244.0.9", 1, WEB, 8080), (WEB, 8080, "10.244.0.9", 1)), now=0.2)  # entry first
    early = logged("flow", "10.244.0.9", WEB, 8080, source_port=1, sequence=3)
    correlator.packet(early, now=0.21)
    alone = logged("flow", CLIENT, WEB, 8080, source_port=2, sequence=2)
    correlator.packet(alone, now=0.2)
    assert [(s, e is not None) for s, _, e in correlator.ready(0.3)] == [(3, True)]
    assert [(s, e) for s, _, e in correlator.ready(0.5)] == [(2, None)]  # its entry never came


def test_two_first_packets_of_one_connection_are_one_flow() -> None:
    correlator = Correlator()
    correlator.packet(logged("flow", CLIENT, WEB, 53, sequence=1), now=0.0)
    correlator.packet(logged("flow", CLIENT, WEB, 53, sequence=2), now=0.0)  # A and AAAA raced
    correlator.entry(entry((CLIENT, 40000, WEB, 53), (WEB, 53, CLIENT, 40000)), now=0.01)
    correlator.packet(logged("flow", CLIENT, WEB, 53, sequence=3), now=0.02)
    assert len(correlator.ready(1.0)) == 1 and correlator.merged == 2


def test_the_log_counts_gaps_in_the_numbering_and_keeps_the_last() -> None:
    log = FlowLog(capacity=2)
    flow = flow_of(logged("flow", CLIENT, WEB, 8080), "n1", directory())
    for sequence in (10, 11, 14, 15):
        log.numbered(sequence)
    numbers = [log.add(flow) for _ in range(3)]
    assert numbers == [1, 2, 3] and log.lost == 2 and log.evicted == 1
    assert [n for n, _ in log.since(0)] == [2, 3] and [n for n, _ in log.since(2)] == [3]
    log.numbered(0)  # the kernel's numbers wrap at 2**32
    assert log.lost == 2 + (1 << 32) - 16
    log.ended(3, 9.0, 12, 3400)
    assert log.since(2)[0][1].bytes == 3400 and log.since(2)[0][1].ended == 9.0


def test_observe_filters_as_hubble_does() -> None:
    flow = flow_of(logged("flow", CLIENT, WEB, 8080), "n1", directory(),
                   entry((CLIENT, 40000, "10.96.0.20", 80), (WEB, 8080, CLIENT, 40000)))

    def keeps(**given: object) -> bool:
        options: dict[str, object] = {"from_pod": None, "to_pod": None, "pod": None, "namespace": None,
                                      "from_namespace": None, "to_namespace": None, "service": None,
                                      "verdicts": (), "protocol": None, "port": None, "ip": None, "since": None}
        return flow_filter(**{**options, **given})(flow)  # type: ignore[arg-type]

    assert keeps(from_pod="client") and keeps(to_pod="apps/web-1") and keeps(pod="apps/web")
    assert not keeps(from_pod="apps/web-1") and keeps(namespace="apps") and keeps(to_namespace="apps")
    assert keeps(service="apps/web") and not keeps(service="web")  # a bare name is in the default namespace
    assert keeps(verdicts=("translated",)) and not keeps(verdicts=("DROPPED",))
    assert keeps(port=8080) and keeps(port=80) and not keeps(port=81) and keeps(ip=WEB)
    assert keeps(protocol="tcp", from_namespace="default") and not keeps(since=2.0)


def test_a_reused_port_is_a_new_connection() -> None:
    correlator = Correlator(wait=0.25)
    first, second = (logged("flow", CLIENT, WEB, 8080, sequence=n) for n in (1, 2))
    correlator.packet(first, now=0.0)
    correlator.packet(second, now=0.01)  # the client reused its port: another connection, another entry
    opened = entry((CLIENT, 40000, WEB, 8080), (WEB, 8080, CLIENT, 40000))
    correlator.entry(opened, now=0.02)
    correlator.entry(Event("destroy", opened.id, opened.original, opened.reply), now=0.03)
    correlator.entry(Event("new", 8, opened.original, opened.reply), now=0.04)
    assert [(s, e.id if e else None) for s, _, e in correlator.ready(0.05)] == [(1, 7), (2, 8)]
    correlator.packet(late := logged("flow", CLIENT, WEB, 8080, sequence=3), now=1.0)  # its entry never comes
    assert correlator.ready(1.5) == [(3, late, None)] and correlator.merged == 0


def test_an_entry_that_ended_before_it_was_reported_claims_its_packet() -> None:
    correlator = Correlator()
    packet = logged("flow", CLIENT, WEB, 8080, sequence=1)
    correlator.packet(packet, now=0.0)
    short = entry((CLIENT, 40000, WEB, 8080), (WEB, 8080, CLIENT, 40000), kind="destroy")
    correlator.entry(short, now=0.01)
    assert correlator.ready(0.02) == [(1, packet, short)]
    long_gone = entry((CLIENT, 40000, WEB, 8080), (WEB, 8080, CLIENT, 40000))
    correlator.entry(long_gone, now=1.0)  # a made entry's own end claims nothing
    correlator.packet(later := logged("flow", CLIENT, WEB, 8080, sequence=2), now=1.1)
    correlator.entry(Event("destroy", long_gone.id, long_gone.original, long_gone.reply), now=1.2)
    assert correlator.ready(1.3) == [(2, later, long_gone)]


def test_observe_names_the_nodes_that_are_not_recording_or_do_not_answer() -> None:
    from podnet.observe.client import AgentUnreachable, Merger

    def ask(namespace: str, path: str) -> dict:  # type: ignore[type-arg]
        if namespace == "ns-c":
            raise AgentUnreachable("the agent in ns-c does not answer")
        recording = namespace == "ns-a"
        return {"flows": [], "recorded": 0, "lost": 0, "evicted": 0, "recording": recording, "restarts": 2,
                "failure": None if recording else "OSError: bad file descriptor"}

    merger = Merger({"a": "ns-a", "b": "ns-b", "c": "ns-c"}, ask)
    assert merger.poll() == []
    assert merger.losses().splitlines() == [
        "node b: its agent is not recording flows (OSError: bad file descriptor; 2 restarts so far)",
        "node c: the agent in ns-c does not answer"]


def _ipv6_tcp_syn(source: str, destination: str, source_port: int, port: int) -> bytes:
    """The first 64 bytes of an IPv6 TCP SYN, as NFLOG copies them."""
    tcp = struct.pack(">HHIIBBHHH", source_port, port, 1, 0, 0x50, 0x02, 64240, 0, 0)
    header = struct.pack(">IHBB", 6 << 28, len(tcp), 6, 64) + socket.inet_pton(socket.AF_INET6, source) + \
        socket.inet_pton(socket.AF_INET6, destination)
    return (header + tcp)[:64]


def _ipv6_tuple(kind: int, source: str, destination: str, source_port: int, port: int) -> bytes:
    """CTA_TUPLE_ORIG or _REPLY as ctnetlink nests it: { IP { V6_SRC, V6_DST }, PROTO { NUM, SPORT, DPORT } }."""
    return nest(kind, nest(1, attr(3, socket.inet_pton(socket.AF_INET6, source)),
                           attr(4, socket.inet_pton(socket.AF_INET6, destination))),
                nest(2, attr(1, bytes([6])), attr(2, struct.pack(">H", source_port)),
                     attr(3, struct.pack(">H", port))))


def test_a_logged_ipv6_packet_is_read_with_its_addresses_ports_and_flags() -> None:
    packet = parse_packet("flow", _ipv6_tcp_syn(CLIENT6, WEB6, 40000, 8080), 1.0, 5)
    assert packet == Logged(1.0, "flow", CLIENT6, WEB6, "TCP", 8080, 40000, "SYN", 5)
    assert parse_packet("flow", b"\x60" + bytes(30), 1.0) is None  # cut short: no header to read


def test_an_ipv6_conntrack_event_gives_both_tuples() -> None:
    body = _ipv6_tuple(1, CLIENT6, SERVICE6, 40000, 80) + _ipv6_tuple(2, WEB6, CLIENT6, 8080, 40000) + be32(12, 9)
    event = parse_event(0x100, body)  # IPCTNL_MSG_CT_NEW
    assert event == Event("new", 9, Tuple(6, CLIENT6, SERVICE6, 40000, 80), Tuple(6, WEB6, CLIENT6, 8080, 40000))


def test_a_connection_to_an_ipv6_cluster_ip_is_joined_and_named() -> None:
    correlator = Correlator()
    packet = Logged(1.0, "flow", CLIENT6, WEB6, "TCP", 8080, 40000, "SYN", 1)  # logged as it leaves: DNAT done
    through = Event("new", 9, Tuple(6, CLIENT6, SERVICE6, 40000, 80), Tuple(6, WEB6, CLIENT6, 8080, 40000))
    correlator.packet(packet, now=0.0)
    correlator.entry(through, now=0.01)
    ((_, logged_packet, joined),) = correlator.ready(0.02)
    flow = flow_of(logged_packet, "n1", directory(), joined)
    assert (flow.verdict, flow.source, flow.source_pod, flow.destination, flow.service) == \
        (TRANSLATED, CLIENT6, "default/client", SERVICE6, "apps/web:http")
    assert (flow.endpoint, flow.endpoint_pod, flow.masqueraded_to) == (f"[{WEB6}]:8080", "apps/web-1", "")
    direct = flow_of(Logged(1.0, "flow", CLIENT6, WEB6, "TCP", 8080, 40000), "n2", directory())
    assert (direct.verdict, direct.destination_pod) == (FORWARDED, "apps/web-1")
    probe = flow_of(Logged(1.0, "flow", "fd00:10:244::1", CLIENT6, "TCP", 8080, 40000), "n1", directory())
    assert probe.source_node == "n1"  # the node's IPv6 bridge address: its probes come from there


def test_observe_filters_ipv6_addresses_and_cidrs() -> None:
    through = Event("new", 9, Tuple(6, CLIENT6, SERVICE6, 40000, 80), Tuple(6, WEB6, CLIENT6, 8080, 40000))
    flow = flow_of(Logged(1.0, "flow", CLIENT6, WEB6, "TCP", 8080, 40000), "n1", directory(), through)
    icmp = flow_of(Logged(1.0, "flow", CLIENT6, WEB6, "ICMPv6", None), "n1", directory())

    def keeps(ip: str | None = None, protocol: str | None = None, port: int | None = None,
              of: Flow = flow) -> bool:
        return flow_filter(None, None, None, None, None, None, None, (), protocol, port, ip, None)(of)

    assert keeps("fd00:10:244:1:0:0:0:3") and keeps(WEB6) and keeps(SERVICE6)  # however the address is written
    assert keeps("fd00:10:244:1::/64") and keeps("fd00:10:244::/56") and not keeps("fd00:10:244:2::/64")
    assert not keeps("10.244.1.3") and not keeps("10.0.0.0/8") and keeps(port=8080)
    assert keeps(protocol="icmpv6", of=icmp) and not keeps(protocol="icmp", of=icmp)
    with pytest.raises(FilterError, match="not an IP address or CIDR"):
        keeps("fd00::zz")


def test_flows_print_ipv6_addresses_with_their_ports_in_brackets() -> None:
    from podnet.cli.observe import row

    flow = flow_of(Logged(1.0, "flow", "2001:db8::10", NODE6, "TCP", 30080, 5000), "n1", directory())
    assert row(flow)[2:4] == ("[2001:db8::10]:5000", "apps/web:30080")  # a node port at its IPv6 address


def test_a_flow_table_per_family_of_the_node() -> None:
    from podnet.kernel.nftables.fake import Fake
    from podnet.observe.recorder import flow_table, node_families

    fake = Fake()
    for family in node_families(Snapshot(1, directory_nodes(), [], [], []), "n1"):
        fake.run(flow_table(family))
    assert {t.text() for t in fake.tables} == {"ip podnet-flows", "ip6 podnet-flows"}
    listed = fake.dump()
    assert "ip6 saddr != ::1 log prefix \"flow\" group 7170" in listed and "ip saddr != 127.0.0.0/8 log" in listed
    assert node_families(Snapshot(1, [], [], [], []), "n1") == ("IPv4",)  # until the store has the node
