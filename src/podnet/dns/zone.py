"""The cluster zone as a value: every name the Kubernetes DNS specification
(schema 1.1.0) defines for the Services and Pods in the store, and the answer
to any question about it.

Pure: built from resources, queried without a network, so the specification's
cases are unit tests.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field

import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from podnet.model.endpointslice import EndpointSlice, by_service
from podnet.model.pod import Pod
from podnet.model.service import Service

SCHEMA_VERSION = "1.1.0"
POD_MODES = ("disabled", "insecure", "verified")  # CoreDNS's kubernetes `pods` option


@dataclass
class Answer:
    rcode: int
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)


class Zone:
    """The cluster domain's records (none when domain is None: a hosts-only
    server, as the seed's first CoreDNS), and the names of hosts entries."""

    def __init__(self, domain: str | None = "cluster.local", ttl: int = 5, pods: str = "verified") -> None:
        self.domain = domain or None
        self.origin = dns.name.from_text(domain) if domain else dns.name.root
        self.ttl = ttl
        self.pods = pods
        self._records: dict[dns.name.Name, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.extra_names: set[dns.name.Name] = set()  # names outside the domain we answer for (hosts entries)
        if domain:
            self.add(f"dns-version.{domain}.", dns.rdatatype.TXT, f'"{SCHEMA_VERSION}"')

    def __len__(self) -> int:
        return len(self._records)

    def add(self, name: str, rdtype: int, value: str) -> None:
        records = self._records[dns.name.from_text(name).canonicalize()][rdtype]
        if value not in records:
            records.append(value)

    def has(self, name: str, rdtype: int) -> bool:
        return bool(self._records.get(dns.name.from_text(name).canonicalize(), {}).get(rdtype))

    def soa(self) -> dns.rrset.RRset:
        """MINIMUM is the zone's ttl, so negative answers are cached as long as positive ones."""
        primary, mailbox = (dns.name.from_text(label, self.origin).to_text() for label in ("ns.dns", "hostmaster"))
        return dns.rrset.from_text(self.origin, self.ttl, "IN", "SOA", f"{primary} {mailbox} 1 7200 1800 86400 {self.ttl}")

    def authoritative_for(self, name: dns.name.Name) -> bool:
        if name.canonicalize() in self.extra_names:
            return True
        return self.domain is not None and (name.is_subdomain(self.origin) or _reverse(name))

    def query(self, qname: dns.name.Name, qtype: int) -> Answer:
        """NOERROR with records, NODATA (NOERROR, no records, SOA) when the name
        exists with other types, NXDOMAIN (SOA) when it does not exist at all."""
        name = qname.canonicalize()
        types = self._records.get(name)
        if not types and self.pods == "insecure":
            types = self._pod_by_name(name)
        if not types and not self._has_children(name):
            return Answer(dns.rcode.NXDOMAIN, authority=[self.soa()])
        if types and dns.rdatatype.CNAME in types and qtype != dns.rdatatype.CNAME:
            return Answer(dns.rcode.NOERROR, [self._rrset(qname, dns.rdatatype.CNAME, types[dns.rdatatype.CNAME])])
        values = (types or {}).get(qtype, []) if qtype != dns.rdatatype.ANY else []
        if not values:
            return Answer(dns.rcode.NOERROR, authority=[self.soa()])
        found = Answer(dns.rcode.NOERROR, [self._rrset(qname, qtype, values)])
        if qtype == dns.rdatatype.SRV:
            for value in values:
                target = dns.name.from_text(value.split()[-1]).canonicalize()
                for address_type in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    addresses = self._records.get(target, {}).get(address_type)
                    if addresses:
                        found.additional.append(self._rrset(target, address_type, addresses))
        return found

    def _pod_by_name(self, name: dns.name.Name) -> dict[int, list[str]] | None:
        """`pods insecure`: a-b-c-d.<ns>.pod.<zone> is a-b-c-d, whether or not such a pod exists."""
        if not name.is_subdomain(self.origin):
            return None
        labels = name.relativize(self.origin).labels
        if len(labels) != 3 or labels[2] != b"pod":
            return None
        ip = _undashed(labels[0].decode(errors="replace"))
        return {_address_type(ip): [ip]} if ip else None

    def _has_children(self, name: dns.name.Name) -> bool:
        """An empty non-terminal (svc.cluster.local) exists: NODATA, not NXDOMAIN."""
        return any(other.is_subdomain(name) and other != name for other in self._records)

    def _rrset(self, name: dns.name.Name, rdtype: int, values: list[str]) -> dns.rrset.RRset:
        return dns.rrset.from_text_list(name, self.ttl, dns.rdataclass.IN, rdtype, values)


def hosts_records(text: str) -> list[tuple[str, str]]:
    """(name, address) pairs from /etc/hosts-format text, as CoreDNS's hosts plugin reads it."""
    pairs = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            ipaddress.ip_address(fields[0])
        except ValueError:
            continue
        pairs.extend((name.rstrip(".") + ".", fields[0]) for name in fields[1:])
    return pairs


def add_hosts(zone: Zone, pairs: list[tuple[str, str]]) -> None:
    """Hosts entries answer authoritatively for their names, with PTRs for their addresses."""
    for name, ip in pairs:
        zone.add(name, _address_type(ip), ip)
        pointer = _pointer(ip)
        zone.add(pointer, dns.rdatatype.PTR, name)
        zone.extra_names.update(dns.name.from_text(n).canonicalize() for n in (name, pointer))


_REVERSE_ZONES = (dns.name.from_text("in-addr.arpa."), dns.name.from_text("ip6.arpa."))


def _reverse(name: dns.name.Name) -> bool:
    return any(name.is_subdomain(zone) for zone in _REVERSE_ZONES)


def _address_type(ip: str) -> int:
    return dns.rdatatype.A if ipaddress.ip_address(ip).version == 4 else dns.rdatatype.AAAA


def _pointer(ip: str) -> str:
    """The reverse name of an address: in-addr.arpa for IPv4, ip6.arpa nibbles for IPv6."""
    return ipaddress.ip_address(ip).reverse_pointer + "."


def _dashed(ip: str) -> str:
    """An address as a label, as CoreDNS writes it: 10-244-1-5, and fd00-244--5
    for fd00:244::5 (the compressed form)."""
    return str(ipaddress.ip_address(ip)).replace(".", "-").replace(":", "-")


def _undashed(label: str) -> str | None:
    """The address a dashed label stands for, or None; three single dashes make an
    IPv4 address, anything else is read as IPv6 (CoreDNS's rule), compressed
    (fd00-10-244--5) or written out (fd00-0010-0244-0000-0000-0000-0000-0005)."""
    ipv4 = label.count("-") == 3 and "--" not in label
    text = label.replace("-", "." if ipv4 else ":")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def build_zone(services: list[Service], slices: list[EndpointSlice], pods: list[Pod],
               domain: str | None = "cluster.local", ttl: int = 5, hosts: list[tuple[str, str]] | None = None,
               pod_records: str = "verified") -> Zone:
    """Services' names from the Services and their slices (as CoreDNS's kubernetes
    plugin), pods' dashed names from the pods; on a dual-stack cluster, a record
    of each family (A, AAAA) wherever there is an address of it."""
    zone = Zone(domain, ttl, pod_records)
    add_hosts(zone, hosts or [])
    if zone.domain is None:
        return zone
    grouped = by_service(slices)
    endpoint_pointers: dict[str, str] = {}  # a ClusterIP Service's endpoint address -> its name there
    for service in services:
        name, namespace = service.metadata.name, service.metadata.namespace
        fqdn = f"{name}.{namespace}.svc.{domain}."
        if service.type == "ExternalName" and service.external_name:
            zone.add(fqdn, dns.rdatatype.CNAME, service.external_name.rstrip(".") + ".")
            continue
        if service.headless:
            targets: dict[str, None] = {}  # in order, each once: a hostname names an address of each family
            for ip, hostname in _ready_addresses(grouped.get((namespace, name), [])):
                target = f"{hostname or _dashed(ip)}.{fqdn}"
                for record in (fqdn, target):
                    zone.add(record, _address_type(ip), ip)
                zone.add(_pointer(ip), dns.rdatatype.PTR, target)
                targets[target] = None
        elif service.addresses:
            for ip in service.addresses:  # an A and an AAAA for a dual-stack Service
                zone.add(fqdn, _address_type(ip), ip)
                zone.add(_pointer(ip), dns.rdatatype.PTR, fqdn)
            for ip, hostname in _ready_addresses(grouped.get((namespace, name), [])):
                endpoint_pointers.setdefault(ip, f"{hostname or _dashed(ip)}.{fqdn}")
            targets = {fqdn: None}
        else:
            continue
        for port in service.ports:
            if port.name:  # SRV only for named ports, one record per target (N x M for headless)
                srv = f"_{port.name}._{port.protocol.lower()}.{fqdn}"
                for target in targets:
                    zone.add(srv, dns.rdatatype.SRV, f"0 {100 // len(targets)} {port.port} {target}")
    for ip, target in endpoint_pointers.items():
        # `dig -x` of a pod's address names it as an endpoint, one name as CoreDNS gives (a headless one first)
        if not zone.has(_pointer(ip), dns.rdatatype.PTR):
            zone.add(_pointer(ip), dns.rdatatype.PTR, target)
    for pod in pods if pod_records != "disabled" else ():
        for ip in pod.pod_ips:  # each family's, where CoreDNS's `verified` knows the primary (status.podIP) only
            zone.add(f"{_dashed(ip)}.{pod.metadata.namespace}.pod.{domain}.", _address_type(ip), ip)
    return zone


def _ready_addresses(slices: list[EndpointSlice]) -> list[tuple[str, str | None]]:
    """A headless service's ready endpoints (every one, with publishNotReadyAddresses,
    for the controller marks them ready) and their hostnames."""
    found = {e.address: e.hostname for piece in slices for e in piece.endpoints if e.ready}
    return sorted(found.items())