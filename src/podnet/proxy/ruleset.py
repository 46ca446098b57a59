"""Service ports as one nftables table: the pure half of the proxy.

Everything a packet meets is a map lookup, so its cost does not grow with the
number of services, and neither does the number of chains:
  services      clusterIP . proto . port -> goto pick_<n>, n being its endpoint count
  pick_<n>      DNAT to backends[clusterIP . proto . port . (random mod n)]
  node_ports    proto . nodePort -> goto the node-port pick chain of its policy
  no_endpoints  ports with nowhere to go -> reject (TCP reset, ICMP unreachable)
So a service is a handful of map elements, and changing one endpoint changes
only that service's elements. Services with ClientIP affinity need per-endpoint
state, and get chains of their own (as in kube-proxy's nftables mode).
Traffic from outside the pod network, through node ports with the Cluster policy,
and from a pod to itself (hairpin) is masqueraded on the way out.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from functools import reduce
from dataclasses import dataclass

from podnet.model.service import Endpoint
from podnet.proxy.endpoints import ServicePortView

TABLE = "podnet-proxy"
MASQ_MARK = "0x4000"
PROTOCOLS = ("tcp", "udp", "sctp")


def _id(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:12]


def affinity_chain(view: ServicePortView, node_port: bool = False) -> str:
    return f"{'ext' if node_port else 'svc'}_{_id(view.name, view.cluster_ip, view.protocol, view.port)}"


def endpoint_chain(view: ServicePortView, endpoint: Endpoint) -> str:
    return f"ep_{_id(view.name, endpoint.ip, endpoint.port)}"


def affinity_set(view: ServicePortView, endpoint: Endpoint) -> str:
    return f"aff_{_id(view.name, endpoint.ip, endpoint.port)}"


def _elements(items: Iterable[str]) -> str:
    items = sorted(set(items))
    return f"elements = {{ {', '.join(items)} }}; " if items else ""


def _pick_chain(count: int, node_port: bool = False, masquerade: bool = False) -> str:
    if node_port:
        return f"{'np_cluster_' if masquerade else 'np_local_'}{count}"
    return f"{'pick_masq_' if masquerade else 'pick_'}{count}"


def _firewall(view: ServicePortView, address: str, entry: str, chains: list[str]) -> str:
    """loadBalancerSourceRanges: only those sources reach the load balancer IP."""
    name = f"fw_{_id(view.name, address)}"
    ranges = ", ".join(view.source_ranges)
    chains.append(_chain(name, [f"ip saddr {{ {ranges} }} {entry}", "drop"], f"{view.name} from {ranges}"))
    return f"goto {name}"


# The table's maps and sets: name -> declaration (its elements come separately).
_COLLECTIONS = {
    "cluster_ips": "type ipv4_addr;",
    "services": "type ipv4_addr . inet_proto . inet_service : verdict;",
    "backends": "typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport;",
    "node_ports": "type inet_proto . inet_service : verdict;",
    "node_port_backends": "typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport;",
    "no_endpoints": "type ipv4_addr . inet_proto . inet_service : verdict;",
    "no_endpoint_node_ports": "type inet_proto . inet_service : verdict;",
    "hairpin": "type ipv4_addr . ipv4_addr;",
}


@dataclass(frozen=True)
class Ruleset:
    """The table as a value: the elements of each map and set, and the chains.

    Two rulesets with the same chains differ only in elements, and the difference
    is a transaction whose size is the number of elements that changed."""

    elements: dict[str, frozenset[str]]
    chains: tuple[str, ...]
    pod_network: str

    def text(self) -> str:
        """The body of `table ip podnet-proxy`, for nft.replace_table."""
        out = [f"\t{'map' if ':' in decl else 'set'} {name} {{ {decl} {_elements(self.elements[name])}}}"
               for name, decl in _COLLECTIONS.items()]
        out.append(_FIXED_CHAINS.replace("POD_NETWORK", self.pod_network).replace("MARK", MASQ_MARK))
        out.extend(self.chains)
        return "\n".join(out)

    def changes_from(self, before: Ruleset) -> str | None:
        """The nft script turning `before` into this ruleset, or None when the
        chains differ and the table must be replaced whole."""
        if before.chains != self.chains or before.pod_network != self.pod_network:
            return None
        deletes, adds = [], []  # one command per map: nft's cost is per command more than per element
        for name in _COLLECTIONS:
            old, new = before.elements[name], self.elements[name]
            if old - new:
                keys = ", ".join(_key(element) for element in sorted(old - new))
                deletes.append(f"delete element ip {TABLE} {name} {{ {keys} }}")
            if new - old:
                adds.append(f"add element ip {TABLE} {name} {{ {', '.join(sorted(new - old))} }}")
        return "\n".join(deletes + adds)


def _key(element: str) -> str:
    return element.split(" : ")[0]


def render(views: list[ServicePortView], pod_network: str) -> str:
    """The body of `table ip podnet-proxy`, for nft.replace_table."""
    return build(views, pod_network).text()


def build(views: list[ServicePortView], pod_network: str) -> Ruleset:
    services, backends, node_ports, node_backends = [], [], [], []
    rejects, reject_node_ports, hairpins, cluster_ips = [], [], set(), set()
    picks: set[tuple[int, bool, bool]] = set()
    chains: list[str] = []
    for view in views:
        if view.affinity_seconds is not None:
            chains.extend(_affinity_endpoints(view))
        cluster_ips.add(view.cluster_ip)
        key = f"{view.cluster_ip} . {view.protocol} . {view.port}"
        hairpins.update(f"{e.ip} . {e.ip}" for e in view.endpoints)
        inside = _serving(view.cluster_endpoints)
        if inside:
            entry = _dispatch(view, key, inside, picks, backends, chains, node_port=False, masquerade=False)
            services.append(f"{key} : {entry}")
        else:
            rejects.append(f"{key} : goto reject_service")
        outside = _serving(view.external_endpoints)
        for address in (*view.external_ips, *view.load_balancer_ips):
            external_key = f"{address} . {view.protocol} . {view.port}"
            cluster_ips.add(address)  # undefined ports on it are rejected too
            if not outside:
                rejects.append(f"{external_key} : goto reject_service")
                continue
            entry = _dispatch(view, external_key, outside, picks, backends, chains, node_port=False,
                              masquerade=not view.external_local)
            if address in view.load_balancer_ips and view.source_ranges:
                entry = _firewall(view, address, entry, chains)
            services.append(f"{external_key} : {entry}")
        if not view.node_port:
            continue
        node_key = f"{view.protocol} . {view.node_port}"
        if outside:
            masquerade = not view.external_local  # Local keeps the client's address
            entry = _dispatch(view, node_key, outside, picks, node_backends, chains, node_port=True, masquerade=masquerade)
            node_ports.append(f"{node_key} : {entry}")
        else:
            no_local = view.external_local and view.endpoints
            reject_node_ports.append(f"{node_key} : {'drop' if no_local else 'goto reject_service'}")

    elements = {
        "cluster_ips": cluster_ips, "services": services, "backends": backends, "node_ports": node_ports,
        "node_port_backends": node_backends, "no_endpoints": rejects, "no_endpoint_node_ports": reject_node_ports,
        "hairpin": hairpins,
    }
    all_chains = [_pick(count, node_port, masquerade) for count, node_port, masquerade in sorted(picks)] + chains
    return Ruleset({name: frozenset(items) for name, items in elements.items()}, tuple(all_chains), pod_network)


_FIXED_CHAINS = """\tchain nat_prerouting { type nat hook prerouting priority dstnat; policy accept; jump services_dispatch; }
\tchain nat_output { type nat hook output priority -100; policy accept; jump services_dispatch; }
\tchain services_dispatch {
\t\tip saddr != POD_NETWORK ip daddr @cluster_ips jump mark_for_masquerade
\t\tip daddr . meta l4proto . th dport vmap @services
\t\tfib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @node_ports
\t}
\tchain nat_postrouting { type nat hook postrouting priority srcnat; policy accept;
\t\tmeta mark & MARK == MARK meta mark set meta mark ^ MARK masquerade fully-random
\t\tct status dnat ip saddr . ip daddr @hairpin masquerade
\t}
\tchain mark_for_masquerade { meta mark set meta mark | MARK; }
\tchain filter_input { type filter hook input priority 0; policy accept;
\t\tfib daddr type local meta l4proto . th dport vmap @no_endpoint_node_ports
\t}
\tchain filter_forward { type filter hook forward priority 0; policy accept; jump endpoint_check; }
\tchain filter_output { type filter hook output priority 0; policy accept; jump endpoint_check; }
\tchain endpoint_check {
\t\tip daddr . meta l4proto . th dport vmap @no_endpoints
\t\tip daddr @cluster_ips goto reject_service
\t}
\tchain reject_service {
\t\tmeta l4proto tcp reject with tcp reset
\t\treject
\t}"""


def _dispatch(view: ServicePortView, key: str, endpoints: tuple[Endpoint, ...], picks: set[tuple[int, bool, bool]],
              backends: list[str], chains: list[str], *, node_port: bool, masquerade: bool) -> str:
    """The verdict a dispatch map gives this port: a shared pick chain, whose
    backends are added here, or (with affinity) a chain of the port's own."""
    if view.affinity_seconds is not None:
        name = affinity_chain(view, node_port or masquerade)
        if not any(chain.startswith(f"\tchain {name} ") for chain in chains):
            chains.append(_affinity_entry(view, endpoints, node_port or masquerade))
        return f"goto {name}"
    slots = weighted(endpoints)
    picks.add((len(slots), node_port, masquerade))
    backends.extend(f"{key} . {i} : {e.ip} . {e.port}" for i, e in enumerate(slots))
    return f"goto {_pick_chain(len(slots), node_port, masquerade)}"


def _serving(endpoints: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
    """Weight 0 is quiescent: the endpoint keeps its flows but gets no new ones."""
    return tuple(e for e in endpoints if e.weight > 0)


def weighted(endpoints: tuple[Endpoint, ...]) -> list[Endpoint]:
    """An endpoint takes as many of the random pick's slots as its weight (1 unless
    its pod says otherwise, 0 for none), reduced by the weights' common divisor."""
    weights = [e.weight for e in endpoints]
    divisor = reduce(math.gcd, weights) or 1
    return [e for e in endpoints for _ in range(e.weight // divisor)]


def _pick(count: int, node_port: bool, masquerade: bool) -> str:
    """One chain per endpoint count (and node-port policy), shared by every service."""
    rules = ["jump mark_for_masquerade"] if masquerade else []
    for protocol in PROTOCOLS:
        if node_port:
            rules.append(f"meta l4proto {protocol} dnat ip to meta l4proto . th dport . numgen random mod {count} "
                         "map @node_port_backends")
        else:
            rules.append(f"meta l4proto {protocol} dnat ip to ip daddr . meta l4proto . th dport . "
                         f"numgen random mod {count} map @backends")
    return _chain(_pick_chain(count, node_port, masquerade), rules)


def _chain(name: str, rules: list[str], comment: str | None = None) -> str:
    head = f"\t\tcomment \"{comment}\"\n" if comment else ""
    body = "".join(f"\t\t{rule}\n" for rule in rules)
    return f"\tchain {name} {{\n{head}{body}\t}}"


def _affinity_entry(view: ServicePortView, endpoints: tuple[Endpoint, ...], node_port: bool) -> str:
    """A client seen before goes back to its endpoint (a timed set per endpoint);
    a new one is picked at random, and its endpoint chain remembers it."""
    rules = [] if (not node_port or view.external_local) else ["jump mark_for_masquerade"]
    rules += [f"ip saddr @{affinity_set(view, e)} goto {endpoint_chain(view, e)}" for e in endpoints]
    choices = ", ".join(f"{i} : goto {endpoint_chain(view, e)}" for i, e in enumerate(endpoints))
    rules.append(f"numgen random mod {len(endpoints)} vmap {{ {choices} }}")
    return _chain(affinity_chain(view, node_port), rules, view.name)


def _affinity_endpoints(view: ServicePortView) -> list[str]:
    chains = []
    for endpoint in view.endpoints:
        name = affinity_set(view, endpoint)
        chains.append(f"\tset {name} {{ type ipv4_addr; flags dynamic,timeout; timeout {view.affinity_seconds}s; }}")
        chains.append(_chain(endpoint_chain(view, endpoint), [
            f"update @{name} {{ ip saddr }}",
            f"meta l4proto {view.protocol} dnat ip to {endpoint.ip}:{endpoint.port}",
        ], f"{view.name} -> {endpoint.pod}"))
    return chains
