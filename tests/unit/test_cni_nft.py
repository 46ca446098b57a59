"""The nftables the CNI plugins keep on the host, walked by the tracer: one map
element per container, and where each container's packets end."""

from __future__ import annotations

from podnet.cni.plugins import nat
from podnet.cni.plugins.portmap import TABLE as PORTMAP, PortMapping, _rules, _skeleton, render_elements
from podnet.kernel.nftables.fake import Fake
from podnet.kernel.nftables.objects import Element
from podnet.kernel.nftables.tracer import Packet, Tracer, targets

HOST = "172.18.0.2"


def masqueraded(nft: Fake, source: str, destination: str) -> bool:
    (outcome,) = Tracer(nft, frozenset({HOST})).trace(Packet(source, destination))
    return outcome.masqueraded


def test_masquerade_keeps_subnet_and_multicast_traffic_alone() -> None:
    nft = Fake()
    nat.add_masquerade(nft, "podnet", ["10.244.1.5/24"])  # the first container sets the table up
    nat.add_masquerade(nft, "podnet", ["10.244.1.6/24"])  # the next adds an element
    assert masqueraded(nft, "10.244.1.5", "203.0.113.10")
    assert masqueraded(nft, "10.244.1.6", "203.0.113.10")
    assert not masqueraded(nft, "10.244.1.5", "10.244.1.9")  # its own subnet
    assert not masqueraded(nft, "10.244.1.5", "224.0.0.251")  # multicast
    assert not masqueraded(nft, "10.244.1.7", "203.0.113.10")  # not a container of this network
    nat.remove_masquerade(nft, "podnet", ["10.244.1.5/32"])
    nat.remove_masquerade(nft, "podnet", ["10.244.1.5/32"])  # DEL twice is fine
    assert not masqueraded(nft, "10.244.1.5", "203.0.113.10")
    assert masqueraded(nft, "10.244.1.6", "203.0.113.10")


def test_removing_from_a_host_without_the_table_does_nothing() -> None:
    nft = Fake()
    nat.remove_masquerade(nft, "podnet", ["10.244.1.5/32"])
    assert nft.dump() == ""


def test_chain_names_survive_any_network_name() -> None:
    assert nat.masq_chain("my.net-1").startswith("masq_my_net_1_")
    assert nat.masq_chain("a.b") != nat.masq_chain("a_b")


def test_mac_guard_elements_come_and_go() -> None:
    nft = Fake()
    nat.add_mac_guard(nft, "veth1234", "02:00:00:00:00:01")
    nat.add_mac_guard(nft, "veth5678", "02:00:00:00:00:02")
    assert Element("allowed", ('"veth1234"', "02:00:00:00:00:01")) in nft.list_elements(nat.GUARD_TABLE, "allowed")
    nat.remove_mac_guard(nft, "veth1234")
    assert nft.list_elements(nat.GUARD_TABLE, "allowed") == [Element("allowed", ('"veth5678"', "02:00:00:00:00:02"))]
    assert nft.list_elements(nat.GUARD_TABLE, "guarded") == [Element("guarded", ('"veth5678"',))]


def portmapped(mappings: tuple[PortMapping, ...], ip: str = "10.244.1.5", **options: bool) -> Fake:
    nft = Fake()
    elements = render_elements(mappings, [ip], options.get("snat", True), options.get("masq_all", False))
    nft.run(_skeleton().add(*_rules()).add(*elements))
    return nft


def test_published_ports_reach_the_container() -> None:
    nft = portmapped((PortMapping(8080, 80, "tcp", None), PortMapping(5353, 53, "udp", HOST)))
    tracer = Tracer(nft, frozenset({HOST, "172.18.0.3"}))
    assert targets(tracer.trace(Packet("172.18.0.9", HOST, "tcp", 8080))) == {"10.244.1.5:80"}
    assert targets(tracer.trace(Packet("172.18.0.9", HOST, "udp", 5353))) == {"10.244.1.5:53"}
    assert targets(tracer.trace(Packet("172.18.0.9", "172.18.0.3", "udp", 5353))) == {"172.18.0.3:5353"}  # hostIP
    (local,) = tracer.trace(Packet("127.0.0.1", "127.0.0.1", "tcp", 8080), origin="local")
    assert local.target == "10.244.1.5:80" and local.masqueraded  # localhost is masqueraded (snat)
    (hairpin,) = tracer.trace(Packet("10.244.1.5", HOST, "tcp", 8080))
    assert hairpin.target == "10.244.1.5:80" and hairpin.masqueraded
    (outside,) = tracer.trace(Packet("172.18.0.9", HOST, "tcp", 8080))
    assert not outside.masqueraded


def test_masq_all_masquerades_every_mapped_connection() -> None:
    nft = portmapped((PortMapping(8080, 80, "tcp", None),), masq_all=True)
    (outcome,) = Tracer(nft, frozenset({HOST})).trace(Packet("172.18.0.9", HOST, "tcp", 8080))
    assert outcome.masqueraded


def test_portmap_elements() -> None:
    mappings = (PortMapping(8080, 80, "tcp", None), PortMapping(5353, 53, "udp", "192.168.1.10"))
    elements = render_elements(mappings, ["10.244.1.5"], snat=True, masq_all=True)
    assert Element("any4", ("tcp", "8080"), ("10.244.1.5", "80")) in elements
    assert Element("host4", ("192.168.1.10", "udp", "5353"), ("10.244.1.5", "53")) in elements
    assert Element("hairpin4", ("10.244.1.5", "10.244.1.5")) in elements
    assert Element("masqall4", ("10.244.1.5", "tcp", "80")) in elements
    assert render_elements(mappings, ["fd00::5"], snat=False, masq_all=False) == [
        Element("any6", ("tcp", "8080"), ("fd00::5", "80"))]
    assert PORTMAP.family == "inet"


def test_ipv6_masquerade_keeps_subnet_and_multicast_traffic_alone() -> None:
    nft = Fake()
    nat.add_masquerade(nft, "podnet", ["10.244.1.5/24", "fd00:244::5/64"])  # a dual-stack pod
    tracer = Tracer(nft, frozenset({HOST, "fd00:18::2"}))
    (outside,) = tracer.trace(Packet("fd00:244::5", "2001:db8::10"))
    assert outside.masqueraded
    assert not masqueraded(nft, "fd00:244::5", "fd00:244::9")  # its own subnet
    assert not masqueraded(nft, "fd00:244::5", "ff02::fb")  # multicast
    assert not masqueraded(nft, "fd00:244::6", "2001:db8::10")  # not a container of this network
    nat.remove_masquerade(nft, "podnet", ["fd00:244::5/128"])
    assert not masqueraded(nft, "fd00:244::5", "2001:db8::10")
    assert masqueraded(nft, "10.244.1.5", "203.0.113.10")  # the pod's IPv4 address is still masqueraded


def test_published_ports_reach_a_dual_stack_container_over_each_family() -> None:
    host6 = "fd00:18::2"
    nft = Fake()
    elements = render_elements((PortMapping(8080, 80, "tcp", None), PortMapping(5353, 53, "udp", host6)),
                               ["10.244.1.5", "fd00:244::5"], snat=True, masq_all=False)
    nft.run(_skeleton().add(*_rules()).add(*elements))
    tracer = Tracer(nft, frozenset({HOST, host6, "fd00:18::3", "::1"}))
    assert targets(tracer.trace(Packet("172.18.0.9", HOST, "tcp", 8080))) == {"10.244.1.5:80"}
    assert targets(tracer.trace(Packet("fd00:18::9", host6, "tcp", 8080))) == {"[fd00:244::5]:80"}
    assert targets(tracer.trace(Packet("fd00:18::9", host6, "udp", 5353))) == {"[fd00:244::5]:53"}  # hostIP
    assert targets(tracer.trace(Packet("fd00:18::9", "fd00:18::3", "udp", 5353))) == {"[fd00:18::3]:5353"}
    assert targets(tracer.trace(Packet("172.18.0.9", HOST, "udp", 5353))) == {f"{HOST}:5353"}  # an IPv6 hostIP only
    (hairpin,) = tracer.trace(Packet("fd00:244::5", host6, "tcp", 8080))
    assert hairpin.target == "[fd00:244::5]:80" and hairpin.masqueraded
    (loopback,) = tracer.trace(Packet("::1", "::1", "tcp", 8080), origin="local")
    assert loopback.target == "[::1]:8080"  # IPv6 loopback never leaves the host: not DNAT'd into a black hole
