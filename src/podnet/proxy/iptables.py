"""kube-proxy's iptables mode, as the seed shows it (`iptables -L -t nat | grep
db-service`): the same Services as the nftables table, in kube-proxy's own
layout, restored whole by one `iptables-restore` per sync. Pure: the rules are
values, turned into restore text at the end.

  nat  PREROUTING, OUTPUT -> KUBE-SERVICES: a rule per service address and port
         -> KUBE-SVC-<hash> (a ClusterIP) or KUBE-EXT-<hash> (an external IP);
         the last rule sends the node's own addresses to KUBE-NODEPORTS
       KUBE-SVC-<hash>: sources outside the pod network are marked for
         masquerade (KUBE-MARK-MASQ), then one rule per endpoint picks it with
         `statistic mode random probability` (weights as kube-proxy cannot:
         each probability is the endpoint's share of what is left)
       KUBE-SVL-<hash>: the same over the node's own endpoints (Local policies)
       KUBE-EXT-<hash>: Cluster policy marks for masquerade and goes to
         KUBE-SVC; Local goes to KUBE-SVL
       KUBE-SEP-<hash>: an endpoint: its own traffic back to itself is marked
         for masquerade (hairpin), then DNAT; with ClientIP affinity the
         `recent` module remembers the client
       KUBE-POSTROUTING: marked packets are masqueraded
       KUBE-FW-<hash>: a load balancer IP's source ranges; other sources are
         marked by KUBE-MARK-DROP
  filter KUBE-SERVICES (from INPUT, FORWARD, OUTPUT): ports without endpoints
         are rejected, node ports without a local endpoint dropped;
         KUBE-FIREWALL drops what KUBE-MARK-DROP marked
Every rule's comment names the Service port (`namespace/name:port`), as
kube-proxy writes it.

IPv6 is the same layout in ip6tables, rendered from the views of that family,
as kube-proxy's dual-stack runs one iptables proxier per family: addresses are
/128, rejects are ICMPv6's port unreachable, and node ports leave ::1 out (IPv6
has no route_localnet), as kube-proxy writes them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from podnet.kernel.nftables.rules import target
from podnet.kernel.node import NodeKernel
from podnet.model.endpointslice import EndpointSlice
from podnet.model.families import IPV4, IPV6
from podnet.model.service import Service
from podnet.proxy.endpoints import Endpoint, ServicePortView, ViewMemo, service_ports
from podnet.proxy.proxier import Proxier
from podnet.proxy.ruleset import MASQ_MARK, pod_network_of, serving

log = logging.getLogger("podnet.proxy")

NAT_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ", "KUBE-MARK-DROP")
FILTER_CHAINS = ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL")
DROP_MARK = 0x8000  # kube-proxy's: the nat table cannot drop, so it marks and filter drops
# the built-in chains' jumps into ours, as kube-proxy adds them (they stay when our chains are restored)
JUMPS = (
    ("nat", "PREROUTING", "KUBE-SERVICES", "kubernetes service portals"),
    ("nat", "OUTPUT", "KUBE-SERVICES", "kubernetes service portals"),
    ("nat", "POSTROUTING", "KUBE-POSTROUTING", "kubernetes postrouting rules"),
    ("filter", "INPUT", "KUBE-SERVICES", "kubernetes service portals"),
    ("filter", "FORWARD", "KUBE-SERVICES", "kubernetes service portals"),
    ("filter", "OUTPUT", "KUBE-SERVICES", "kubernetes service portals"),
    ("filter", "INPUT", "KUBE-EXTERNAL-SERVICES", "kubernetes externally-visible service portals"),
    ("filter", "FORWARD", "KUBE-EXTERNAL-SERVICES", "kubernetes externally-visible service portals"),
    ("filter", "INPUT", "KUBE-FIREWALL", "kubernetes firewall for dropping marked packets"),
    ("filter", "FORWARD", "KUBE-FIREWALL", "kubernetes firewall for dropping marked packets"),
    ("filter", "OUTPUT", "KUBE-FIREWALL", "kubernetes firewall for dropping marked packets"),
)
_MASQ = f"{MASQ_MARK:#x}/{MASQ_MARK:#x}"
REJECT = ("-j", "REJECT", "--reject-with", "icmp-port-unreachable")
REJECT6 = ("-j", "REJECT", "--reject-with", "icmp6-port-unreachable")
_HOST = {IPV4: "/32", IPV6: "/128"}


@functools.lru_cache(maxsize=1 << 17)
def _hash(*parts: object) -> str:
    """kube-proxy's chain suffix: 16 characters of a base32 SHA-256. Remembered:
    every sync names every chain again, and most names do not change."""
    return base64.b32encode(hashlib.sha256("".join(map(str, parts)).encode()).digest())[:16].decode()


@dataclass(frozen=True)
class IptRule:
    """One `-A` line: its matches and its target, as iptables' own arguments."""

    chain: str
    matches: tuple[str, ...]
    target: tuple[str, ...]
    comment: str = ""

    def line(self) -> str:
        comment = ("-m", "comment", "--comment", f'"{self.comment}"') if self.comment else ()
        return " ".join(("-A", self.chain, *comment, *self.matches, *self.target))


@dataclass(frozen=True)
class IptablesRules:
    """Both tables' chains and rules: what one restore writes."""

    nat_chains: tuple[str, ...]
    nat: tuple[IptRule, ...]
    filter: tuple[IptRule, ...]

    def restore_text(self, since: IptablesRules | None = None) -> str:
        """For `iptables-restore --noflush`: each chain declared (and so emptied), then
        its rules; chains of ours no longer wanted are emptied and deleted by the caller.
        Given what the last restore wrote, only the chains whose rules changed, as
        kube-proxy's minimal sync: the others are left as they are, and one
        endpoint's change costs a few lines, not the whole layout."""
        lines = []
        for table, chains, mine, before in (("filter", FILTER_CHAINS, self.filter, since and since.filter),
                                            ("nat", self.nat_chains, self.nat, since and since.nat)):
            wanted, written = _by_chain(chains, mine), _by_chain(chains, before or ())
            changed = [c for c in chains if since is None or wanted[c] != written.get(c)]
            lines += [f"*{table}", *(f":{chain} - [0:0]" for chain in changed),
                      *(rule.line() for chain in changed for rule in wanted[chain]), "COMMIT"]
        return "\n".join(lines) + "\n"


def _by_chain(chains: tuple[str, ...], found: tuple[IptRule, ...]) -> dict[str, list[IptRule]]:
    grouped: dict[str, list[IptRule]] = {chain: [] for chain in chains}
    for rule in found:
        grouped.setdefault(rule.chain, []).append(rule)
    return grouped


def svc_chain(view: ServicePortView) -> str:
    return f"KUBE-SVC-{_hash(view.name, view.protocol)}"


def local_chain(view: ServicePortView) -> str:
    return f"KUBE-SVL-{_hash(view.name, view.protocol)}"


def ext_chain(view: ServicePortView) -> str:
    return f"KUBE-EXT-{_hash(view.name, view.protocol)}"


def sep_chain(view: ServicePortView, endpoint: Endpoint) -> str:
    return f"KUBE-SEP-{_hash(view.name, view.protocol, endpoint.ip, endpoint.port)}"


class _Builder:
    def __init__(self, pod_network: str, family: str) -> None:
        self.pod_network = pod_network
        self.host = _HOST[family]
        self.reject = REJECT6 if family == IPV6 else REJECT
        self.chains: dict[str, None] = dict.fromkeys(NAT_CHAINS)
        self.nat: list[IptRule] = []
        self.filter: list[IptRule] = []
        self.picked: set[str] = set()

    def chain(self, name: str) -> str:
        self.chains.setdefault(name, None)
        return name

    def port(self, view: ServicePortView) -> tuple[str, ...]:
        return ("-p", view.protocol, "-m", view.protocol)

    def service(self, view: ServicePortView) -> None:
        what = view.name
        port = self.port(view)
        inside = serving(view.cluster_endpoints)
        address = ("-d", f"{view.cluster_ip}{self.host}", *port, "--dport", str(view.port))
        if inside:
            if not view.internal_local:  # first in its chain: clients outside the pod network are masqueraded
                self.nat.append(IptRule(self.chain(svc_chain(view)), ("!", "-s", self.pod_network, *address),
                                        ("-j", "KUBE-MARK-MASQ"), f"{what} cluster IP"))
            to = self._pick(view, local_chain(view) if view.internal_local else svc_chain(view),
                            view.local_endpoints if view.internal_local else view.endpoints)
            self.nat.append(IptRule("KUBE-SERVICES", address, ("-j", to), f"{what} cluster IP"))
        else:
            self.filter.append(IptRule("KUBE-SERVICES", address, self.reject, f"{what} has no endpoints"))
        outside = serving(view.external_endpoints)
        external = [*view.external_ips, *view.load_balancer_ips]
        if (external or view.node_port) and outside:
            self._external(view)
        for outer in external:
            if outside:
                balancer = outer in view.load_balancer_ips
                entry = self._firewall(view, outer) if balancer and view.source_ranges else ext_chain(view)
                self.nat.append(IptRule("KUBE-SERVICES", ("-d", f"{outer}{self.host}", *port, "--dport", str(view.port)),
                                        ("-j", entry), f"{what} {'loadbalancer' if balancer else 'external'} IP"))
            else:
                self.filter.append(IptRule("KUBE-EXTERNAL-SERVICES",
                                           ("-d", f"{outer}{self.host}", *port, "--dport", str(view.port)), self.reject,
                                           f"{what} has no endpoints"))
        if view.node_port:
            if outside:
                self.nat.append(IptRule("KUBE-NODEPORTS", (*port, "--dport", str(view.node_port)),
                                        ("-j", ext_chain(view)), what))
            else:
                no_local = view.external_local and view.endpoints
                self.filter.append(IptRule("KUBE-EXTERNAL-SERVICES", ("-m", "addrtype", "--dst-type", "LOCAL", *port,
                                                                      "--dport", str(view.node_port)),
                                           ("-j", "DROP") if no_local else self.reject,
                                           f"{what} has no {'local ' if no_local else ''}endpoints"))

    def _external(self, view: ServicePortView) -> None:
        """KUBE-EXT: Cluster masquerades and picks among all; Local keeps the client
        and picks among the node's own endpoints."""
        chain = self.chain(ext_chain(view))
        if view.external_local:
            self.nat.append(IptRule(chain, (), ("-j", self._pick(view, local_chain(view), view.local_endpoints)),
                                    f"{view.name} local endpoints"))
            return
        self.nat.append(IptRule(chain, (), ("-j", "KUBE-MARK-MASQ"), f"masquerade traffic for {view.name} external "
                                                                     "destinations"))
        self.nat.append(IptRule(chain, (), ("-j", self._pick(view, svc_chain(view), view.endpoints))))

    def _firewall(self, view: ServicePortView, address: str) -> str:
        """loadBalancerSourceRanges, as kube-proxy writes them: the sources listed go
        on to KUBE-EXT, the others are marked, and filter's KUBE-FIREWALL drops them."""
        chain = self.chain(f"KUBE-FW-{_hash(view.name, view.protocol, address)}")
        self.nat += [IptRule(chain, ("-s", source), ("-j", ext_chain(view)), f"{view.name} loadbalancer IP")
                     for source in view.source_ranges]
        self.nat.append(IptRule(chain, (), ("-j", "KUBE-MARK-DROP"), f"{view.name} loadbalancer IP"))
        return chain

    def _pick(self, view: ServicePortView, chain: str, endpoints: tuple[Endpoint, ...]) -> str:
        """A chain that picks one endpoint at random (by weight); made once."""
        if chain in self.picked:
            return chain
        self.picked.add(self.chain(chain))
        slots = serving(endpoints)
        seps = [self._endpoint(view, endpoint) for endpoint in slots]
        if view.affinity_seconds is not None:  # a client the recent module remembers goes back first
            self.nat += [IptRule(chain, ("-m", "recent", "--name", sep, "--rcheck", "--seconds",
                                         str(view.affinity_seconds), "--reap"), ("-j", sep),
                                 f"{view.name} -> {endpoint.ip}:{endpoint.port}")
                         for sep, endpoint in zip(seps, slots)]
        total = sum(e.weight for e in slots)
        for i, (sep, endpoint) in enumerate(zip(seps, slots)):
            rest = total - sum(e.weight for e in slots[:i])  # each takes its share of what the rules before left
            odds = () if i == len(slots) - 1 else \
                ("-m", "statistic", "--mode", "random", "--probability", f"{endpoint.weight / rest:.11f}")
            self.nat.append(IptRule(chain, odds, ("-j", sep), f"{view.name} -> {endpoint.ip}:{endpoint.port}"))
        return chain

    def _endpoint(self, view: ServicePortView, endpoint: Endpoint) -> str:
        sep = sep_chain(view, endpoint)
        if sep in self.chains:
            return sep
        self.chain(sep)
        remember = ("-m", "recent", "--name", sep, "--set") if view.affinity_seconds is not None else ()
        self.nat.append(IptRule(sep, ("-s", f"{endpoint.ip}{self.host}"), ("-j", "KUBE-MARK-MASQ"), view.name))
        self.nat.append(IptRule(sep, (*remember, *self.port(view)),
                                ("-j", "DNAT", "--to-destination", target(endpoint.ip, endpoint.port)), view.name))
        return sep


def build_iptables(views: list[ServicePortView], pod_network: str, family: str = IPV4) -> IptablesRules:
    """One family's tables (iptables' or ip6tables'), from the views of that family;
    pod_network may name a CIDR per family."""
    out = _Builder(pod_network_of(pod_network, family), family)
    for view in views:
        if view.family == family:
            out.service(view)
    not_loopback = ("!", "-d", "::1/128") if family == IPV6 else ()
    out.nat.append(IptRule("KUBE-SERVICES", (*not_loopback, "-m", "addrtype", "--dst-type", "LOCAL"),
                           ("-j", "KUBE-NODEPORTS"),
                           "kubernetes service nodeports; NOTE: this must be the last rule in this chain"))
    out.filter.append(IptRule("KUBE-FIREWALL", ("-m", "mark", "--mark", f"{DROP_MARK:#x}/{DROP_MARK:#x}"),
                              ("-j", "DROP"), "kubernetes firewall for dropping marked packets"))
    out.nat += [IptRule("KUBE-MARK-DROP", (), ("-j", "MARK", "--or-mark", f"{DROP_MARK:#x}")),
                IptRule("KUBE-MARK-MASQ", (), ("-j", "MARK", "--or-mark", f"{MASQ_MARK:#x}")),
                IptRule("KUBE-POSTROUTING", ("-m", "mark", "!", "--mark", _MASQ), ("-j", "RETURN")),
                IptRule("KUBE-POSTROUTING", (), ("-j", "MARK", "--xor-mark", f"{MASQ_MARK:#x}")),
                IptRule("KUBE-POSTROUTING", (), ("-j", "MASQUERADE", "--random-fully"),
                        "kubernetes service traffic requiring SNAT")]
    return IptablesRules(tuple(out.chains), tuple(out.nat), tuple(out.filter))


class IptablesWriting(Protocol):
    def restore(self, text: str) -> None: ...

    def ensure_jumps(self, jumps: Iterable[tuple[str, str, str, str]]) -> None: ...

    def delete_chains(self, table: str, chains: Iterable[str]) -> None: ...

    def for_family(self, family: str) -> IptablesWriting:
        """The same writer for another family's tables (ip6tables)."""
        ...


class IptablesProxier(Proxier):
    """The proxy controller in kube-proxy's iptables mode: a change restores the
    chains it touched (kube-proxy's minimal sync), every resync period all of them
    (repairing drift), and chains no longer wanted go. Each family of the pod
    network has its own tables (iptables, ip6tables), written on their own; the
    writer given writes IPv4's, and its `for_family` the others'."""

    name = "proxy"

    def __init__(self, kernel: NodeKernel, writer: IptablesWriting, node_name: str, cluster_cidr: str,
                 resync_seconds: float = 60.0) -> None:  # a whole restore costs seconds in a large cluster
        super().__init__(kernel, node_name, cluster_cidr, resync_seconds)
        self.writer = writer
        self.writers = {family: writer if family == IPV4 else writer.for_family(family) for family in self.families}
        self._written: dict[str, IptablesRules] = {}  # by family
        self._whole_at: dict[str, float] = {}  # when every chain was last restored
        self._views = ViewMemo()

    def sync_services(self, services: list[Service], slices: list[EndpointSlice],
                      weights: Mapping[tuple[str, str], int] | None = None) -> str:
        """"none", "chains" (the ones that changed) or "table" (every chain: at the
        start, and each resync period, to repair drift); with several families, the
        most any of them needed."""
        views = service_ports(services, slices, self.node_name, weights, self._views)
        done = [self._restore_family(family, views) for family in self.families]
        self._forget_stale_udp_flows(views)
        return max(done, key=_RESTORES.index)

    def _restore_family(self, family: str, views: list[ServicePortView]) -> str:
        writer, written = self.writers[family], self._written.get(family)
        wanted = build_iptables(views, self.cluster_cidr, family)
        whole = time.monotonic() - self._whole_at.get(family, 0.0) >= self.resync_seconds
        if wanted == written and not whole:
            return "none"
        writer.restore(wanted.restore_text(None if whole else written))
        if written is None:  # our chains exist now: the built-in chains' jumps into them
            writer.ensure_jumps(JUMPS)
        else:
            kept = set(wanted.nat_chains)
            writer.delete_chains("nat", [c for c in written.nat_chains if c not in kept])
        if wanted != written:
            mine = [v for v in views if v.family == family]
            log.info("iptables (%s): %d ports, %d endpoints", family, len(mine), sum(len(v.endpoints) for v in mine))
        self._written[family] = wanted
        if whole:
            self._whole_at[family] = time.monotonic()
        return "table" if whole else "chains"


_RESTORES = ("none", "chains", "table")  # what a sync restored, least first
