"""Service ports as one nftables table: the pure half of the proxy.

Everything a packet meets is a map lookup, so its cost does not grow with the
number of services, and neither does the number of chains:
  services      clusterIP . proto . port -> goto pick_<n>, n being its endpoint count
  pick_<n>      DNAT to backends[clusterIP . proto . port . (random mod n)]
  node_ports    proto . nodePort -> goto the node-port pick chain of its policy
  no_endpoints  ports with nowhere to go -> reject (TCP reset, ICMP unreachable)
Each refusal is logged, rationed, to NFLOG for the node's flow records, with
its reason: no endpoints, an undefined port, no local endpoint.
So a service is a handful of map elements, and changing one endpoint changes
only that service's elements. Services with ClientIP affinity need per-endpoint
state, and get chains of their own (as in kube-proxy's nftables mode).
Traffic from outside the pod network to a ClusterIP, to node ports and external
IPs with the Cluster policy, and from a pod to itself (hairpin) is masqueraded on
the way out; the Local policy keeps the client's address.
Each IP family has a table of its own (tables.py says why).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import reduce

from podnet.kernel.nflog import OBSERVED_GROUP
from podnet.kernel.nftables import Chain, Element, Set, Table, Transaction, base_chain
from podnet.kernel.nftables.rules import (
    CT_STATUS, DROP, FIB_DADDR_TYPE, L4PROTO, META_MARK, TH_DPORT, AnonSet, Dnat, Limit, Log, Lookup, Masked,
    Masquerade, Reject, Rule, SetMark, SetRef, UpdateSet, Verdict, VerdictMap, concat, differs, goto, jump, match, rule,
    target, Numgen,
)
from podnet.model.families import IPV4, of_family, split_cidrs
from podnet.proxy.endpoints import Endpoint
from podnet.proxy.endpoints import ServicePortView
from podnet.proxy.tables import FAMILIES, TABLE, TABLES, Family, collections

__all__ = ["COLLECTIONS", "FAMILIES", "TABLE", "TABLES", "Contents", "Ruleset", "build", "element_changes"]


MASQ_MARK = 0x4000
PROTOCOLS = ("tcp", "udp", "sctp")
REJECT = goto("reject_service")  # a service port without endpoints
REJECT_PORT = goto("reject_port")  # a service address asked on a port it does not have
DROP_NO_LOCAL = goto("drop_no_local")  # a node port with the Local policy and no endpoint on this node
LOGGED_PER_SECOND = 50  # refusals logged for `podnet observe`, per chain: floods are sampled
_NODE_PORT_KEY = concat(L4PROTO, TH_DPORT)


COLLECTIONS = collections(FAMILIES[IPV4])
_NAMES = tuple(collection.name for collection in COLLECTIONS)


@dataclass(frozen=True)
class Block:
    """A chain with its rules, and the timed sets its rules remember clients in."""

    chain: Chain
    rules: tuple[Rule, ...]
    sets: tuple[Set, ...] = ()


def _fixed_blocks(pod_network: str, family: Family) -> tuple[Block, ...]:
    """The chains every table has, whatever the services."""
    def block(name: str, *rules: Rule, hooked: bool = False) -> Block:
        return Block(base_chain(family.table, name) if hooked else Chain(name), rules)

    saddr, daddr = family.saddr, family.daddr
    port_key = concat(daddr, L4PROTO, TH_DPORT)
    local_address = (match(FIB_DADDR_TYPE, "local"), differs(daddr, family.loopback))
    return (
        block("nat_prerouting", rule("nat_prerouting", jump("services_dispatch")), hooked=True),
        block("nat_output", rule("nat_output", jump("services_dispatch")), hooked=True),
        # NAT chains see only a connection's first packet, which is all a reject needs: a service
        # port without endpoints, or a port a service address does not have, is refused here, where
        # DNAT had its chance, and no filter chain has to look at every packet the node passes
        block("services_dispatch",
              rule("services_dispatch", differs(saddr, pod_network), match(daddr, SetRef("cluster_ips")),
                   jump("mark_for_masquerade")),
              rule("services_dispatch", VerdictMap(port_key, SetRef("services"))),
              rule("services_dispatch", *local_address, VerdictMap(_NODE_PORT_KEY, SetRef("node_ports"))),
              rule("services_dispatch", VerdictMap(port_key, SetRef("no_endpoints"))),
              rule("services_dispatch", match(daddr, SetRef("cluster_ips")), REJECT_PORT),
              rule("services_dispatch", match(daddr, SetRef("external_ips")), REJECT_PORT),
              rule("services_dispatch", *local_address,
                   VerdictMap(_NODE_PORT_KEY, SetRef("no_endpoint_node_ports")))),
        block("nat_postrouting",
              rule("nat_postrouting", match(Masked(META_MARK, MASQ_MARK), MASQ_MARK), SetMark("^", MASQ_MARK),
                   Masquerade(fully_random=True)),
              rule("nat_postrouting", match(CT_STATUS, "dnat"), match(concat(saddr, daddr), SetRef("hairpin")),
                   Masquerade()),
              hooked=True),
        block("mark_for_masquerade", rule("mark_for_masquerade", SetMark("|", MASQ_MARK))),
        *(block(name, _logged(name, prefix), rule(name, match(L4PROTO, "tcp"), Reject(tcp_reset=True)),
                rule(name, Reject()))
          for name, prefix in (("reject_service", "reject no-endpoints"), ("reject_port", "reject undefined-port"))),
        block("drop_no_local", _logged("drop_no_local", "drop no-local-endpoints"), rule("drop_no_local", DROP)),
    )


def _logged(chain: str, prefix: str) -> Rule:
    """A refusal, logged (rationed) for the node agent's flow records."""
    return rule(chain, Limit(LOGGED_PER_SECOND, LOGGED_PER_SECOND), Log(OBSERVED_GROUP, prefix))


def _id(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:12]


def affinity_chain(view: ServicePortView, node_port: bool = False) -> str:
    return f"{'ext' if node_port else 'svc'}_{_id(view.name, view.cluster_ip, view.protocol, view.port)}"


def endpoint_chain(view: ServicePortView, endpoint: Endpoint) -> str:
    return f"ep_{_id(view.name, endpoint.ip, endpoint.port)}"


def affinity_set(view: ServicePortView, endpoint: Endpoint) -> str:
    return f"aff_{_id(view.name, endpoint.ip, endpoint.port)}"


def _pick_chain(count: int, node_port: bool = False, masquerade: bool = False) -> str:
    if node_port:
        return f"{'np_cluster_' if masquerade else 'np_local_'}{count}"
    return f"{'pick_masq_' if masquerade else 'pick_'}{count}"


@dataclass(frozen=True)
class Ruleset:
    """The table as a value: the elements of each map and set, and the chains.

    Two rulesets with the same chains differ only in elements, and the difference
    is a transaction whose size is the number of elements that changed."""

    elements: dict[str, frozenset[Element]]
    blocks: tuple[Block, ...]  # the chains that depend on the services: picks, affinity, firewalls
    pod_network: str  # of this family
    family: str = IPV4

    @property
    def table(self) -> Table:
        return TABLES[self.family]

    def transaction(self) -> Transaction:
        """The whole table, replaced in one transaction."""
        family = FAMILIES[self.family]
        blocks = _fixed_blocks(self.pod_network, family) + self.blocks
        tx = Transaction(family.table).replace()
        tx.add(*collections(family))
        for block in blocks:
            tx.add(*block.sets)
        tx.add(*(block.chain for block in blocks))
        for block in blocks:
            tx.add(*block.rules)
        for name in _NAMES:
            tx.add_elements(self.elements[name])
        return tx

    def changes_from(self, before: Ruleset) -> Transaction | None:
        """The elements that changed since `before`, or None when the chains
        differ and the table must be replaced whole."""
        if before.blocks != self.blocks or before.pod_network != self.pod_network or before.family != self.family:
            return None
        return element_changes(self.table, {name: before.elements[name] - self.elements[name] for name in _NAMES},
                               {name: self.elements[name] - before.elements[name] for name in _NAMES})


def element_changes(table: Table, gone: dict[str, AbstractSet[Element]],
                    new: dict[str, AbstractSet[Element]]) -> Transaction:
    """Elements out, then elements in: a key that changed value is deleted, then added."""
    tx = Transaction(table)
    for name in _NAMES:
        tx.delete_elements(sorted(gone.get(name, ())))
    for name in _NAMES:
        tx.add_elements(sorted(new.get(name, ())))
    return tx


class Contents:
    """The elements and chains that views make, listed as each view makes them
    (a ClusterIP's element once for each of its ports, a pod's hairpin pair for
    each service it serves, a pick chain for each port of its size), so that the
    change tracker (tracker.py) can count them and take a view out again."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self.elements: dict[str, list[Element]] = {name: [] for name in _NAMES}
        self.picks: list[Pick] = []
        self.blocks: dict[str, Block] = {}  # a view's own chains: its name is in theirs

    def add(self, set_name: str, key: tuple[str, ...], value: tuple[str, ...] | Verdict | None = None) -> None:
        self.elements[set_name].append(Element(set_name, key, value))

    def add_block(self, block: Block) -> None:
        self.blocks[block.chain.name] = block

    def add_view(self, view: ServicePortView) -> None:
        if view.affinity_seconds is not None:
            for block in _affinity_endpoints(view, self.family):
                self.add_block(block)
        self.add("cluster_ips", (view.cluster_ip,))
        key = (view.cluster_ip, view.protocol, str(view.port))
        # a pod reaching itself through the service: only this node's pods can, on this node
        self.elements["hairpin"].extend(Element("hairpin", (e.ip, e.ip)) for e in view.local_endpoints)
        inside = serving(view.cluster_endpoints)
        if inside:
            self.add("services", key, self.dispatch(view, key, inside, node_port=False, masquerade=False))
        else:
            self.add("no_endpoints", key, REJECT)
        outside = serving(view.external_endpoints)
        for address in (*view.external_ips, *view.load_balancer_ips):
            external_key = (address, view.protocol, str(view.port))
            self.add("external_ips", (address,))  # undefined ports on it are rejected too
            if not outside:
                self.add("no_endpoints", external_key, REJECT)
                continue
            entry = self.dispatch(view, external_key, outside, node_port=False, masquerade=not view.external_local)
            if address in view.load_balancer_ips and view.source_ranges:
                entry = self.firewall(view, address, entry)
            self.add("services", external_key, entry)
        if not view.node_port:
            return
        node_key = (view.protocol, str(view.node_port))
        if outside:  # Local keeps the client's address; Cluster masquerades it
            self.add("node_ports", node_key,
                     self.dispatch(view, node_key, outside, node_port=True, masquerade=not view.external_local))
        else:
            no_local = view.external_local and view.endpoints
            self.add("no_endpoint_node_ports", node_key, DROP_NO_LOCAL if no_local else REJECT)

    def dispatch(self, view: ServicePortView, key: tuple[str, ...], endpoints: tuple[Endpoint, ...], *,
                 node_port: bool, masquerade: bool) -> Verdict:
        """The verdict a dispatch map gives this port: a shared pick chain, whose
        backends are added here, or (with affinity) a chain of the port's own."""
        if view.affinity_seconds is not None:
            name = affinity_chain(view, node_port or masquerade)
            if name not in self.blocks:
                self.add_block(_affinity_entry(view, endpoints, node_port or masquerade, self.family))
            return goto(name)
        slots = weighted(endpoints)
        self.picks.append((len(slots), node_port, masquerade))
        backends = "node_port_backends" if node_port else "backends"
        self.elements[backends].extend(Element(backends, (*key, str(i)), (endpoint.ip, str(endpoint.port)))
                                       for i, endpoint in enumerate(slots))
        return goto(_pick_chain(len(slots), node_port, masquerade))

    def firewall(self, view: ServicePortView, address: str, entry: Verdict) -> Verdict:
        """loadBalancerSourceRanges: only those sources reach the load balancer IP."""
        name = f"fw_{_id(view.name, address)}"
        ranges = AnonSet(view.source_ranges)
        self.add_block(Block(Chain(name, comment=f"{view.name} from {', '.join(view.source_ranges)}"),
                             (rule(name, match(self.family.saddr, ranges), entry), rule(name, DROP))))
        return goto(name)

    def ruleset(self, pod_network: str) -> Ruleset:
        return Ruleset({name: frozenset(items) for name, items in self.elements.items()},
                       chains(self.family, set(self.picks), self.blocks), pod_network, self.family.name)


Pick = tuple[int, bool, bool]  # a pick chain: endpoint count, node port, masquerade


def chains(family: Family, picks: Iterable[Pick], blocks: Mapping[str, Block]) -> tuple[Block, ...]:
    """The chains the views need: a pick chain per size in use, then the views' own."""
    return tuple(_pick(*pick, family) for pick in sorted(picks)) + tuple(blocks[name] for name in sorted(blocks))


def pod_network_of(pod_networks: str, family: str) -> str:
    """The family's CIDR of the pod network, given as kube-proxy's --cluster-cidr
    (one per family, comma-separated)."""
    found = of_family(split_cidrs(pod_networks), family)
    if not found:
        raise ValueError(f"the pod network {pod_networks!r} has no {family} CIDR")
    return found[0]


def build(views: list[ServicePortView], pod_network: str, family: str = IPV4) -> Ruleset:
    """The family's table, from the views of that family (the others are left out).
    pod_network may name a CIDR per family."""
    out = Contents(FAMILIES[family])
    for view in views:
        if view.family == family:
            out.add_view(view)
    return out.ruleset(pod_network_of(pod_network, family))


def serving(endpoints: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
    """Weight 0 is quiescent: the endpoint keeps its flows but gets no new ones."""
    return tuple(e for e in endpoints if e.weight > 0)


def weighted(endpoints: tuple[Endpoint, ...]) -> list[Endpoint]:
    """An endpoint takes as many of the random pick's slots as its weight (1 unless
    its pod says otherwise, 0 for none), reduced by the weights' common divisor."""
    weights = [e.weight for e in endpoints]
    divisor = reduce(math.gcd, weights) or 1
    return [e for e in endpoints for _ in range(e.weight // divisor)]


def _pick(count: int, node_port: bool, masquerade: bool, family: Family) -> Block:
    """One chain per endpoint count (and node-port policy), shared by every service."""
    name = _pick_chain(count, node_port, masquerade)
    rules = [rule(name, jump("mark_for_masquerade"))] if masquerade else []
    for protocol in PROTOCOLS:
        if node_port:
            to = Lookup(concat(L4PROTO, TH_DPORT, Numgen(count)), "node_port_backends")
        else:
            to = Lookup(concat(family.daddr, L4PROTO, TH_DPORT, Numgen(count)), "backends")
        rules.append(rule(name, match(L4PROTO, protocol), Dnat(family.nft, to)))
    return Block(Chain(name), tuple(rules))


def _affinity_entry(view: ServicePortView, endpoints: tuple[Endpoint, ...], node_port: bool,
                    family: Family) -> Block:
    """A client seen before goes back to its endpoint (a timed set per endpoint);
    a new one is picked at random, and its endpoint chain remembers it."""
    name = affinity_chain(view, node_port)
    rules = [] if (not node_port or view.external_local) else [rule(name, jump("mark_for_masquerade"))]
    rules += [rule(name, match(family.saddr, SetRef(affinity_set(view, e))), goto(endpoint_chain(view, e)))
              for e in endpoints]
    choices = tuple((str(i), goto(endpoint_chain(view, e))) for i, e in enumerate(endpoints))
    rules.append(rule(name, VerdictMap(Numgen(len(endpoints)), choices)))
    return Block(Chain(name, comment=view.name), tuple(rules))


def _affinity_endpoints(view: ServicePortView, family: Family) -> list[Block]:
    blocks = []
    for endpoint in view.endpoints:
        remembered = affinity_set(view, endpoint)
        name = endpoint_chain(view, endpoint)
        blocks.append(Block(
            Chain(name, comment=f"{view.name} -> {endpoint.pod}"),
            (rule(name, UpdateSet(remembered, family.saddr)),
             rule(name, match(L4PROTO, view.protocol), Dnat(family.nft, target(endpoint.ip, endpoint.port)))),
            (Set(remembered, family.address_type, flags=("dynamic", "timeout"), timeout=view.affinity_seconds),)))
    return blocks
