"""The Kubernetes DNS specification's cases, against the zone, without a network."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from podnet.dns.query import respond
from podnet.controller.endpointslices import desired
from podnet.dns.zone import Zone, build_zone
from podnet.model.manifest import parse_resource


def zone_of(services: list, pods: list, **options: object) -> Zone:  # type: ignore[type-arg]
    """The zone as the DNS builds it: from the services, the controller's slices and the pods."""
    return build_zone(services, desired(services, pods), pods, **options)  # type: ignore[arg-type]


def pod(name: str, ip: str, namespace: str = "apps", **spec: object):  # type: ignore[no-untyped-def]
    return parse_resource({"kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
                           "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 80}]}], **spec},
                           "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}})


def service(name: str, **spec: object):  # type: ignore[no-untyped-def]
    return parse_resource({"kind": "Service", "metadata": {"name": name, "namespace": "apps"},
                           "spec": {"selector": {"app": "web"}, **spec}})


ZONE = zone_of(
    [service("web", clusterIP="10.96.0.20", ports=[{"name": "http", "port": 80, "targetPort": "http"}]),  # type: ignore[list-item]
     service("db", clusterIP="None", ports=[{"name": "http", "port": 80}]),
     parse_resource({"kind": "Service", "metadata": {"name": "ext", "namespace": "apps"},
                     "spec": {"type": "ExternalName", "externalName": "example.org"}})],
    [pod("web-0", "10.244.1.5", hostname="web-0", subdomain="db"), pod("web-1", "10.244.2.6")],  # type: ignore[list-item]
)

CASES = {
    "service A": ("web.apps.svc.cluster.local.", "A", dns.rcode.NOERROR, ["10.96.0.20"]),
    "names are case-insensitive": ("WEB.Apps.SVC.cluster.LOCAL.", "A", dns.rcode.NOERROR, ["10.96.0.20"]),
    "NODATA for a type the name lacks": ("web.apps.svc.cluster.local.", "AAAA", dns.rcode.NOERROR, []),
    "NXDOMAIN for no such service": ("nope.apps.svc.cluster.local.", "A", dns.rcode.NXDOMAIN, []),
    "an empty non-terminal is NODATA": ("apps.svc.cluster.local.", "A", dns.rcode.NOERROR, []),
    "SRV for a named port": ("_http._tcp.web.apps.svc.cluster.local.", "SRV", dns.rcode.NOERROR,
                             ["0 100 80 web.apps.svc.cluster.local."]),
    "PTR of a ClusterIP": ("20.0.96.10.in-addr.arpa.", "PTR", dns.rcode.NOERROR, ["web.apps.svc.cluster.local."]),
    "headless: one A per ready endpoint": ("db.apps.svc.cluster.local.", "A", dns.rcode.NOERROR,
                                          ["10.244.1.5", "10.244.2.6"]),
    "headless: hostname and subdomain": ("web-0.db.apps.svc.cluster.local.", "A", dns.rcode.NOERROR, ["10.244.1.5"]),
    "headless: dashed IP otherwise": ("10-244-2-6.db.apps.svc.cluster.local.", "A", dns.rcode.NOERROR, ["10.244.2.6"]),
    "headless: N x M SRV": ("_http._tcp.db.apps.svc.cluster.local.", "SRV", dns.rcode.NOERROR,
                            ["0 50 80 10-244-2-6.db.apps.svc.cluster.local.", "0 50 80 web-0.db.apps.svc.cluster.local."]),
    "PTR of an endpoint": ("5.1.244.10.in-addr.arpa.", "PTR", dns.rcode.NOERROR, ["web-0.db.apps.svc.cluster.local."]),
    "ExternalName is a CNAME": ("ext.apps.svc.cluster.local.", "A", dns.rcode.NOERROR, ["example.org."]),
    "pod A record": ("10-244-1-5.apps.pod.cluster.local.", "A", dns.rcode.NOERROR, ["10.244.1.5"]),
    "schema version": ("dns-version.cluster.local.", "TXT", dns.rcode.NOERROR, ['"1.1.0"']),
}


ZONE_V6 = zone_of(
    [service("web", clusterIP="fd00:96::20", ports=[{"name": "http", "port": 80}]),  # type: ignore[list-item]
     service("db", clusterIP="None", ports=[{"name": "http", "port": 80}])],  # type: ignore[list-item]
    [pod("web-0", "fd00:244:1::5", hostname="web-0", subdomain="db"), pod("web-1", "fd00:244:2::6")],  # type: ignore[list-item]
)

CASES_V6 = {  # the same records over IPv6: AAAA, ip6.arpa, and labels as CoreDNS dashes them
    "service AAAA": ("web.apps.svc.cluster.local.", "AAAA", dns.rcode.NOERROR, ["fd00:96::20"]),
    "NODATA for A": ("web.apps.svc.cluster.local.", "A", dns.rcode.NOERROR, []),
    "PTR of a ClusterIP in ip6.arpa": ("0.2.0.0." + "0.0.0.0." * 5 + "6.9.0.0.0.0.d.f.ip6.arpa.", "PTR", dns.rcode.NOERROR,
                                       ["web.apps.svc.cluster.local."]),
    "headless: one AAAA per ready endpoint": ("db.apps.svc.cluster.local.", "AAAA", dns.rcode.NOERROR,
                                              ["fd00:244:1::5", "fd00:244:2::6"]),
    "headless: dashed compressed address": ("fd00-244-2--6.db.apps.svc.cluster.local.", "AAAA", dns.rcode.NOERROR,
                                            ["fd00:244:2::6"]),
    "PTR of an endpoint in ip6.arpa": ("5.0.0.0." + "0.0.0.0." * 4 + "1.0.0.0.4.4.2.0.0.0.d.f.ip6.arpa.", "PTR",
                                       dns.rcode.NOERROR, ["web-0.db.apps.svc.cluster.local."]),
    "SRV names the dashed endpoint": ("_http._tcp.db.apps.svc.cluster.local.", "SRV", dns.rcode.NOERROR,
                                      ["0 50 80 fd00-244-2--6.db.apps.svc.cluster.local.",
                                       "0 50 80 web-0.db.apps.svc.cluster.local."]),
    "pod AAAA record": ("fd00-244-1--5.apps.pod.cluster.local.", "AAAA", dns.rcode.NOERROR, ["fd00:244:1::5"]),
}


def check_case(zone, name: str, rdtype: str, rcode: int, values: list[str]) -> None:  # type: ignore[no-untyped-def]
    answer = zone.query(dns.name.from_text(name), dns.rdatatype.from_text(rdtype))
    assert answer.rcode == rcode
    assert sorted(r.to_text() for rrset in answer.answer for r in rrset) == sorted(values)
    if not values:
        assert answer.authority and answer.authority[0].rdtype == dns.rdatatype.SOA
        assert answer.authority[0][0].minimum == zone.ttl


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_specification_case(case: str) -> None:
    check_case(ZONE, *CASES[case])


@pytest.mark.parametrize("case", CASES_V6, ids=list(CASES_V6))
def test_specification_case_over_ipv6(case: str) -> None:
    check_case(ZONE_V6, *CASES_V6[case])


def test_srv_answers_carry_the_address() -> None:
    answer = ZONE.query(dns.name.from_text("_http._tcp.web.apps.svc.cluster.local."), dns.rdatatype.SRV)
    assert [r.to_text() for rrset in answer.additional for r in rrset] == ["10.96.0.20"]


@pytest.mark.parametrize("wire", [b"", b"\x01", b"\x00" * 11, b"garbage-garbage-garbage", b"\xff" * 600])
def test_bad_packets_get_formerr_or_nothing(wire: bytes) -> None:
    reply = respond(ZONE, wire, 512)
    assert reply is None or dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


def test_axfr_is_refused_and_big_answers_truncate() -> None:
    axfr = dns.message.make_query("cluster.local.", "AXFR")
    assert dns.message.from_wire(respond(ZONE, axfr.to_wire(), 512)).rcode() == dns.rcode.REFUSED  # type: ignore[arg-type]
    many = zone_of([service("big", clusterIP="None", ports=[{"name": "http", "port": 80}])],  # type: ignore[list-item]
                      [pod(f"p{i}", f"10.244.3.{i + 2}") for i in range(60)])  # type: ignore[misc]
    query = dns.message.make_query("big.apps.svc.cluster.local.", "A")
    reply = dns.message.from_wire(respond(many, query.to_wire(), 512))  # type: ignore[arg-type]
    assert reply.flags & dns.flags.TC and not reply.answer
    assert len(dns.message.from_wire(respond(many, query.to_wire(), None)).answer[0]) == 60  # type: ignore[arg-type]


def test_hosts_file_names() -> None:
    from podnet.dns.zone import hosts_records

    pairs = hosts_records("# the seed's /etc/hosts\n192.168.1.10 web\n192.168.1.11 db db-1  # two names\nbogus line\n")
    assert pairs == [("web.", "192.168.1.10"), ("db.", "192.168.1.11"), ("db-1.", "192.168.1.11")]
    zone = zone_of([], [], hosts=pairs)
    assert zone.authoritative_for(dns.name.from_text("DB-1."))
    answer = zone.query(dns.name.from_text("db-1."), dns.rdatatype.A)
    assert [r.to_text() for rrset in answer.answer for r in rrset] == ["192.168.1.11"]
    assert not zone.authoritative_for(dns.name.from_text("example.org."))


def names(zone, name: str, rdtype: str = "A") -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    answer = zone.query(dns.name.from_text(name), dns.rdatatype.from_text(rdtype))
    return answer.rcode, sorted(r.to_text() for rrset in answer.answer for r in rrset)


@pytest.mark.parametrize("mode, existing, made_up", [
    ("disabled", (dns.rcode.NXDOMAIN, []), (dns.rcode.NXDOMAIN, [])),
    ("insecure", (dns.rcode.NOERROR, ["10.244.1.5"]), (dns.rcode.NOERROR, ["10.9.8.7"])),
    ("verified", (dns.rcode.NOERROR, ["10.244.1.5"]), (dns.rcode.NXDOMAIN, [])),
])
def test_pods_modes(mode: str, existing: tuple[int, list[str]], made_up: tuple[int, list[str]]) -> None:
    """As CoreDNS's `pods`: no pod names, any well-formed one, or only existing pods."""
    zone = zone_of([], [pod("web-0", "10.244.1.5")], pod_records=mode)  # type: ignore[list-item]
    assert names(zone, "10-244-1-5.apps.pod.cluster.local.") == existing
    assert names(zone, "10-9-8-7.apps.pod.cluster.local.") == made_up
    assert names(zone, "not-an-ip.apps.pod.cluster.local.")[0] == dns.rcode.NXDOMAIN
    assert names(zone, "10-9-8.apps.pod.cluster.local.")[0] == dns.rcode.NXDOMAIN  # neither IPv4 nor IPv6


def test_publish_not_ready_addresses() -> None:
    not_ready = parse_resource({"kind": "Pod", "metadata": {"name": "late", "namespace": "apps", "labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "c"}]}, "status": {"podIP": "10.244.1.9"}})
    ports = [{"name": "http", "port": 80}]
    hidden = zone_of([service("db", clusterIP="None", ports=ports)], [pod("web-0", "10.244.1.5"), not_ready])  # type: ignore[list-item]
    shown = zone_of([service("db", clusterIP="None", ports=ports, publishNotReadyAddresses=True)],  # type: ignore[list-item]
                       [pod("web-0", "10.244.1.5"), not_ready])  # type: ignore[list-item]
    assert names(hidden, "db.apps.svc.cluster.local.")[1] == ["10.244.1.5"]
    assert names(shown, "db.apps.svc.cluster.local.")[1] == ["10.244.1.5", "10.244.1.9"]


def test_a_hosts_only_zone_answers_nothing_else() -> None:
    zone = zone_of([], [], domain=None, hosts=[("web.", "192.168.1.10")])
    assert zone.authoritative_for(dns.name.from_text("web."))
    assert zone.authoritative_for(dns.name.from_text("10.1.168.192.in-addr.arpa."))
    assert not zone.authoritative_for(dns.name.from_text("dns-version.cluster.local."))
    assert not zone.authoritative_for(dns.name.from_text("11.1.168.192.in-addr.arpa."))


def reply_to(query: dns.message.Message) -> dns.message.Message:
    return dns.message.from_wire(respond(ZONE, query.to_wire(), 512))  # type: ignore[arg-type]


def test_edns_replies_announce_our_buffer_and_later_versions_get_badvers() -> None:
    """RFC 6891: a reply to an EDNS query carries OPT version 0; a version we do
    not speak gets BADVERS and no answer."""
    edns0 = reply_to(dns.message.make_query("web.apps.svc.cluster.local.", "A", use_edns=0, payload=4096))
    assert edns0.edns == 0 and edns0.payload == 1232 and edns0.answer
    plain = reply_to(dns.message.make_query("web.apps.svc.cluster.local.", "A"))
    assert plain.edns == -1 and plain.answer
    later = reply_to(dns.message.make_query("web.apps.svc.cluster.local.", "A", use_edns=1))
    assert later.rcode() == dns.rcode.BADVERS and later.edns == 0 and not later.answer


def test_only_the_internet_class_is_answered() -> None:
    chaos = reply_to(dns.message.make_query("web.apps.svc.cluster.local.", "A", rdclass="CH"))
    assert chaos.rcode() == dns.rcode.REFUSED and not chaos.answer
