"""The cluster zone of a dual-stack cluster: A and AAAA for Services and pods,
headless endpoints from the slices of both address types, PTRs in in-addr.arpa
and ip6.arpa, and SRV targets that resolve to both families."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from podnet.dns.query import respond
from podnet.dns.zone import build_zone
from podnet.model.endpointslice import SERVICE_NAME, EndpointSlice, SliceEndpoint
from podnet.model.families import family_of
from podnet.model.manifest import parse_resource
from podnet.model.meta import ObjectMeta
from podnet.model.pod import Pod
from podnet.model.service import Service
from tests.unit.test_dns_zone import check_case, names


def pod(name: str, *ips: str, ready: bool = True, **spec: object) -> Pod:
    return parse_resource({  # type: ignore[return-value]
        "kind": "Pod", "metadata": {"name": name, "namespace": "apps", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c"}], **spec},
        "status": {"podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips],
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}})


def service(name: str, **spec: object) -> Service:
    return parse_resource({"kind": "Service", "metadata": {"name": name, "namespace": "apps"},  # type: ignore[return-value]
                           "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}], **spec}})


def slices(service_name: str, pods: list[Pod]) -> list[EndpointSlice]:
    """One slice per address type, each with the pods' addresses of that family,
    as the EndpointSlice controller writes them for a dual-stack Service."""
    found = []
    for address_type in ("IPv4", "IPv6"):
        endpoints = tuple(
            SliceEndpoint(ip, p.ready, p.ready, hostname=p.hostname if p.subdomain == service_name else None,
                          pod=p.metadata.name)
            for p in pods for ip in p.pod_ips if family_of(ip) == address_type)
        meta = ObjectMeta(f"{service_name}-{address_type.lower()}", "apps", {SERVICE_NAME: service_name})
        found.append(EndpointSlice(meta, address_type, endpoints))
    return found


PODS = [pod("web-0", "10.244.1.5", "fd00:10:244:1::5", hostname="web-0", subdomain="db"),
        pod("web-1", "10.244.2.6", "fd00:10:244:2::6"),
        pod("late", "10.244.2.7", "fd00:10:244:2::7", ready=False),
        pod("v6-first", "fd00:10:244::5", "10.244.0.5")]
SERVICES = [
    service("web", clusterIPs=["10.96.0.20", "fd00:10:96::20"], ipFamilies=["IPv4", "IPv6"],
            ipFamilyPolicy="PreferDualStack"),
    service("six", clusterIPs=["fd00:10:96::30"], ipFamilies=["IPv6"], ipFamilyPolicy="SingleStack"),
    service("db", clusterIP="None", ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="RequireDualStack"),
]
ZONE = build_zone(SERVICES, slices("db", PODS[:3]), PODS)

V6_WEB = "0.2.0.0." + "0.0.0.0." * 4 + "6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa."
V6_WEB_0 = "5.0.0.0." + "0.0.0.0." * 3 + "1.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa."
DB = "db.apps.svc.cluster.local."

CASES = {
    "a dual-stack Service's A": ("web.apps.svc.cluster.local.", "A", dns.rcode.NOERROR, ["10.96.0.20"]),
    "a dual-stack Service's AAAA": ("web.apps.svc.cluster.local.", "AAAA", dns.rcode.NOERROR, ["fd00:10:96::20"]),
    "an IPv6-only Service's AAAA": ("six.apps.svc.cluster.local.", "AAAA", dns.rcode.NOERROR, ["fd00:10:96::30"]),
    "an IPv6-only Service has no A (NODATA)": ("six.apps.svc.cluster.local.", "A", dns.rcode.NOERROR, []),
    "PTR of the IPv4 ClusterIP": ("20.0.96.10.in-addr.arpa.", "PTR", dns.rcode.NOERROR, ["web.apps.svc.cluster.local."]),
    "PTR of the IPv6 ClusterIP": (V6_WEB, "PTR", dns.rcode.NOERROR, ["web.apps.svc.cluster.local."]),
    "PTR of an IPv6 address nobody has": ("f" + V6_WEB[1:], "PTR", dns.rcode.NXDOMAIN, []),
    "headless: an A per ready IPv4 endpoint": (DB, "A", dns.rcode.NOERROR, ["10.244.1.5", "10.244.2.6"]),
    "headless: an AAAA per ready IPv6 endpoint": (DB, "AAAA", dns.rcode.NOERROR,
                                                  ["fd00:10:244:1::5", "fd00:10:244:2::6"]),
    "headless: a hostname has the A": ("web-0." + DB, "A", dns.rcode.NOERROR, ["10.244.1.5"]),
    "headless: and the AAAA": ("web-0." + DB, "AAAA", dns.rcode.NOERROR, ["fd00:10:244:1::5"]),
    "headless: dashed IPv4 name": ("10-244-2-6." + DB, "A", dns.rcode.NOERROR, ["10.244.2.6"]),
    "headless: dashed IPv6 name, compressed": ("fd00-10-244-2--6." + DB, "AAAA", dns.rcode.NOERROR,
                                               ["fd00:10:244:2::6"]),
    "headless: a dashed IPv6 name has no A": ("fd00-10-244-2--6." + DB, "A", dns.rcode.NOERROR, []),
    "headless: not ready is left out": ("fd00-10-244-2--7." + DB, "AAAA", dns.rcode.NXDOMAIN, []),
    "PTR of an IPv6 endpoint": (V6_WEB_0, "PTR", dns.rcode.NOERROR, ["web-0." + DB]),
    "PTR of its IPv4 address": ("5.1.244.10.in-addr.arpa.", "PTR", dns.rcode.NOERROR, ["web-0." + DB]),
    "PTR of a dashed IPv6 endpoint": ("6.0.0.0." + "0.0.0.0." * 3 + "2.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa.", "PTR",
                                      dns.rcode.NOERROR, ["fd00-10-244-2--6." + DB]),
    "SRV: one target per name, each family's dashed name its own": (
        "_http._tcp." + DB, "SRV", dns.rcode.NOERROR,
        ["0 33 80 10-244-2-6." + DB, "0 33 80 fd00-10-244-2--6." + DB, "0 33 80 web-0." + DB]),
    "SRV of a dual-stack Service: one target": ("_http._tcp.web.apps.svc.cluster.local.", "SRV", dns.rcode.NOERROR,
                                                ["0 100 80 web.apps.svc.cluster.local."]),
    "a pod's A": ("10-244-1-5.apps.pod.cluster.local.", "A", dns.rcode.NOERROR, ["10.244.1.5"]),
    "a pod's AAAA, dashed compressed": ("fd00-10-244-1--5.apps.pod.cluster.local.", "AAAA", dns.rcode.NOERROR,
                                        ["fd00:10:244:1::5"]),
    "the issue's example": ("fd00-10-244--5.apps.pod.cluster.local.", "AAAA", dns.rcode.NOERROR, ["fd00:10:244::5"]),
    "an IPv6 primary pod's IPv4 name": ("10-244-0-5.apps.pod.cluster.local.", "A", dns.rcode.NOERROR, ["10.244.0.5"]),
    "a pod's IPv6 name has no A": ("fd00-10-244-1--5.apps.pod.cluster.local.", "A", dns.rcode.NOERROR, []),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_dual_stack_case(case: str) -> None:
    check_case(ZONE, *CASES[case])


def additional(zone, name: str, rdtype: str = "SRV") -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    answer = zone.query(dns.name.from_text(name), dns.rdatatype.from_text(rdtype))
    found: dict[str, list[str]] = {}
    for rrset in answer.additional:
        found.setdefault(f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}", []).extend(r.to_text() for r in rrset)
    return found


def test_srv_targets_carry_both_families() -> None:
    assert additional(ZONE, "_http._tcp.web.apps.svc.cluster.local.") == {
        "web.apps.svc.cluster.local. A": ["10.96.0.20"], "web.apps.svc.cluster.local. AAAA": ["fd00:10:96::20"]}
    assert additional(ZONE, "_http._tcp." + DB) == {
        f"10-244-2-6.{DB} A": ["10.244.2.6"], f"fd00-10-244-2--6.{DB} AAAA": ["fd00:10:244:2::6"],
        f"web-0.{DB} A": ["10.244.1.5"], f"web-0.{DB} AAAA": ["fd00:10:244:1::5"]}


def test_srv_additional_section_on_the_wire() -> None:
    query = dns.message.make_query("_http._tcp.web.apps.svc.cluster.local.", "SRV", use_edns=0)
    reply = dns.message.from_wire(respond(ZONE, query.to_wire(), 1232))  # type: ignore[arg-type]
    assert sorted(r.to_text() for rrset in reply.additional for r in rrset) == ["10.96.0.20", "fd00:10:96::20"]


def test_a_v6_only_service_answers_nodata_over_the_wire() -> None:
    """As CoreDNS answers A for a name with only an AAAA: NOERROR, no answer, the SOA."""
    query = dns.message.make_query("six.apps.svc.cluster.local.", "A")
    reply = dns.message.from_wire(respond(ZONE, query.to_wire(), 512))  # type: ignore[arg-type]
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert reply.authority[0].rdtype == dns.rdatatype.SOA


def test_a_headless_service_of_one_family_lists_that_family() -> None:
    six = [pod("a", "fd00:10:244:1::8"), pod("b", "fd00:10:244:1::9")]
    zone = build_zone([service("db", clusterIP="None", ipFamilies=["IPv6"])], slices("db", six)[1:], six)
    assert names(zone, DB, "AAAA") == (dns.rcode.NOERROR, ["fd00:10:244:1::8", "fd00:10:244:1::9"])
    assert names(zone, DB, "A") == (dns.rcode.NOERROR, [])


EXPANDED = "fd00-0010-0244-0001-0000-0000-0000-0005.apps.pod.cluster.local."
MADE_UP = "fd00-10-244-9--9.apps.pod.cluster.local."


@pytest.mark.parametrize("mode, compressed, expanded, made_up", [
    ("disabled", (dns.rcode.NXDOMAIN, []), (dns.rcode.NXDOMAIN, []), (dns.rcode.NXDOMAIN, [])),
    ("insecure", (dns.rcode.NOERROR, ["fd00:10:244:1::5"]), (dns.rcode.NOERROR, ["fd00:10:244:1::5"]),
     (dns.rcode.NOERROR, ["fd00:10:244:9::9"])),
    ("verified", (dns.rcode.NOERROR, ["fd00:10:244:1::5"]), (dns.rcode.NXDOMAIN, []), (dns.rcode.NXDOMAIN, [])),
])
def test_pod_ipv6_names_by_mode(mode: str, compressed: tuple[int, list[str]], expanded: tuple[int, list[str]],
                                made_up: tuple[int, list[str]]) -> None:
    """CoreDNS reads a pod name with dashes for colons: `insecure` answers any
    address so written, compressed or not; `verified` only a pod's address as the
    API holds it (compressed)."""
    zone = build_zone([], [], PODS[:1], pod_records=mode)
    assert names(zone, "fd00-10-244-1--5.apps.pod.cluster.local.", "AAAA") == compressed
    assert names(zone, EXPANDED, "AAAA") == expanded
    assert names(zone, MADE_UP, "AAAA") == made_up
    if mode == "insecure":
        assert names(zone, EXPANDED, "A") == (dns.rcode.NOERROR, [])  # the name exists, as an IPv6 address
        assert names(zone, "fd00-10-244-1-5.apps.pod.cluster.local.", "AAAA")[0] == dns.rcode.NXDOMAIN  # no "::"


def test_a_pod_behind_a_cluster_ip_service_has_one_ptr_in_each_family_as_coredns_answers_dig_x() -> None:
    web = [PODS[1]]
    zone = build_zone([SERVICES[0]], slices("web", web), web)
    for ip, name in (("10.244.2.6", "10-244-2-6.web.apps.svc.cluster.local."),
                     ("fd00:10:244:2::6", "fd00-10-244-2--6.web.apps.svc.cluster.local.")):
        answer = zone.query(dns.name.from_text(dns.reversename.from_address(ip).to_text()), dns.rdatatype.PTR)
        assert [r.to_text() for rrset in answer.answer for r in rrset] == [name]
