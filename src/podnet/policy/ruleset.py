"""A node's NetworkPolicies as one nftables table: the pure half of the enforcer.

Each node judges the connections of its own pods: their egress where they
leave, their ingress where they arrive. Bridged traffic between pods of one
node passes the same hook as routed traffic (the node's namespace keeps
net.bridge.bridge-nf-call-iptables at 1), and both are seen after service DNAT,
so a connection to a ClusterIP is judged at its endpoint pod.

  forward, input    replies and established connections pass; a pod to itself
                    passes; then the source's egress, then the destination's ingress
  egress, ingress   local pod IP -> goto the chain of the policies isolating it
  egress_<n>        one chain per distinct list of policies (pods that the same
  ingress_<n>       policies select share it): ClusterNetworkPolicy's Admin tier,
                    NetworkPolicy, the Baseline tier; a rule per peer of a policy
                    rule, a peer's pods as a set that every rule with the same
                    selectors shares, an ipBlock as a prefix minus its holes;
                    single ports (a named one as each destination pod calls it)
                    in one set, ranges and whole protocols in rules of their own.
                    Egress that matches returns (ingress is judged next);
                    ingress that matches is accepted; the end goes to
                    <direction>_isolated, which logs (at most LOGGED_PER_SECOND)
                    to NFLOG group DROPS_GROUP and drops.
                    Pods selected only by policies in audit mode are not
                    isolated: their chain logs what it would drop and lets it on.

A packet meets one map lookup per direction and then only the rules of the
policies that select its pods, however many policies the cluster has.
Connections already established when a policy changes keep going, as with
Calico and Cilium: conntrack passes them before any rule is read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from podnet.kernel.nflog import OBSERVED_GROUP
from podnet.kernel.nftables import Chain, Element, Map, Set, Table, Transaction, base_chain, hooks
from podnet.kernel.nftables.rules import (
    ACCEPT, CT_STATE, DROP, IP_DADDR, IP_SADDR, L4PROTO, RETURN, TH_DPORT, Field, Limit, Log, Match, Rule, SetRef,
    Statement, VerdictMap, concat, differs, goto, jump, match, rule,
)
from podnet.model.clusternetworkpolicy import ACCEPT as ACCEPT_ACTION
from podnet.model.clusternetworkpolicy import ADMIN, BASELINE, PASS, ClusterPeer
from podnet.model.networkpolicy import EGRESS, INGRESS, NetworkPolicy, Peer, PolicyPort, PolicyRule
from podnet.model.pod import Pod
from podnet.policy.evaluator import PolicyView

TABLE = Table("ip", hooks.POLICY)
DROPS_GROUP = OBSERVED_GROUP  # where dropped (and, in audit mode, would-be dropped) first packets are logged
LOGGED_PER_SECOND = 50  # and as many at once, per log rule (a direction, a denying policy): floods are sampled
_OWN_KEY = concat(IP_SADDR, IP_DADDR)
_NAMED_KEY = concat(IP_DADDR, L4PROTO, TH_DPORT)
_NAMED_TYPE = "ipv4_addr . inet_proto . inet_service"
_PORT_KEY = concat(L4PROTO, TH_DPORT)


@dataclass(frozen=True)
class _Side:
    """What differs between the two directions."""

    direction: str
    prefix: str  # of the chains and sets
    remote: Field  # the other end's address: where egress goes, where ingress comes from
    local: Field  # the isolated pod's address
    allowed: Statement  # what a matching rule does

    def rules_of(self, policy: NetworkPolicy) -> tuple[PolicyRule, ...]:
        return policy.egress if self.direction == EGRESS else policy.ingress


EGRESS_SIDE = _Side(EGRESS, "egress", IP_DADDR, IP_SADDR, RETURN)
INGRESS_SIDE = _Side(INGRESS, "ingress", IP_SADDR, IP_DADDR, ACCEPT)


class _Builder:
    """Chains, rules, sets and elements of one node's table, with sets shared by content."""

    def __init__(self, view: PolicyView) -> None:
        self.view = view
        self.chains: list[Chain] = []
        self.rules: list[Rule] = []
        self.sets: list[Set] = []
        self.elements: list[Element] = []
        self._sets_by_content: dict[tuple[str, frozenset[tuple[str, ...]]], str] = {}
        self._deny_chains: dict[tuple[str, str], str] = {}
        self._selections: dict[tuple[object, ...], frozenset[tuple[str, ...]]] = {}
        self._isolated_chains: set[str] = set()  # (direction, policy) -> its deny chain
        self._policies = {p.metadata.key: p for p in view.policies}
        self._cluster = {c.metadata.name: c for c in view.cluster_policies}

    def named_set(self, kind: str, key: str, members: frozenset[tuple[str, ...]]) -> str:
        """A set of these members, made once however many rules use it."""
        known = self._sets_by_content.get((key, members))
        if known is not None:
            return known
        name = f"{kind}_{len(self._sets_by_content)}"
        self._sets_by_content[(key, members)] = name
        self.sets.append(Set(name, key))
        self.elements.extend(Element(name, member) for member in sorted(members))
        return name

    def side(self, side: _Side, local_pods: Sequence[Pod]) -> None:
        """The dispatch map of one direction and chains per group of pods the same
        policies select: the Admin tier's rules, then NetworkPolicy's, then the
        Baseline tier's. An isolated pod's chain ends in a drop, logged (rationed)
        to the NFLOG group for `podnet policy drops`; a pod selected only by
        NetworkPolicies in audit mode is not isolated: its chain logs what they
        would drop and goes on."""
        groups: dict[tuple[tuple[str, ...], tuple[str, ...], bool, tuple[str, ...]], list[Pod]] = {}
        for pod in local_pods:
            selecting = self.view.selecting(pod, side.direction)
            audit = not selecting
            if audit:
                selecting = self.view.selecting(pod, side.direction, audit=True)
            admin, baseline = (tuple(dict.fromkeys(c.metadata.name for c, _, _ in
                                                   self.view.cluster_rules(pod, side.direction, tier)))
                               for tier in (ADMIN, BASELINE))
            if selecting or admin or baseline:
                key = (admin, tuple(p.metadata.key for p in selecting), audit and bool(selecting), baseline)
                groups.setdefault(key, []).append(pod)
        dispatch = f"{side.prefix}_pods"
        self.sets.append(Map(dispatch, "ipv4_addr", "verdict"))
        self.chains.append(Chain(side.prefix))
        self.rules.append(rule(side.prefix, VerdictMap(side.local, SetRef(dispatch))))
        for n, ((admin, keys, audit, baseline), pods) in enumerate(sorted(groups.items())):
            chain = f"{side.prefix}_{n}"
            self.chains.append(Chain(chain, comment=_comment(", ".join([*admin, *keys, *baseline]))))
            self.elements.extend(Element(dispatch, (pod.pod_ip or "",), goto(chain)) for pod in pods)
            if admin:
                after = f"{chain}_np"
                self._tier(side, chain, admin, pods, passed=goto(after))
                self.rules.append(rule(chain, goto(after)))
                self.chains.append(Chain(after))
                chain = after
            if keys and not audit:
                self._network_policies(side, chain, keys, pods, side.allowed)
                self.rules.append(rule(chain, goto(self._isolated(side)), comment="no policy rule allows it"))
                continue
            rest: Statement = side.allowed
            if keys and baseline:  # audited: the Baseline tier in a chain of its own, after the log
                rest = goto(f"{chain}_base")
            if keys:
                self._network_policies(side, chain, keys, pods, rest)
                self._logged(side, chain, f"audit {side.prefix} {', '.join(keys)}", rest, "audit: would drop")
                if not baseline:
                    continue
                chain = f"{chain}_base"
                self.chains.append(Chain(chain))
            self._tier(side, chain, baseline, pods, passed=side.allowed)
            self.rules.append(rule(chain, side.allowed))

    def _network_policies(self, side: _Side, chain: str, keys: Sequence[str], pods: Sequence[Pod],
                          allowed: Statement) -> None:
        for key in keys:
            policy = self._policies[key]
            for i, policy_rule in enumerate(side.rules_of(policy)):
                comment = _comment(f"{key} {side.prefix}[{i}]")
                for statements in self._rule_matches(side, policy, policy_rule, pods):
                    self.rules.append(Rule(chain, (*statements, allowed), comment))

    def _logged(self, side: _Side, chain: str, prefix: str, verdict: Statement, comment: str) -> None:
        self.rules.append(rule(chain, Limit(LOGGED_PER_SECOND, LOGGED_PER_SECOND), Log(DROPS_GROUP, _comment(prefix))))
        self.rules.append(rule(chain, verdict, comment=comment))

    def _tier(self, side: _Side, chain: str, names: Sequence[str], pods: Sequence[Pod], passed: Statement) -> None:
        """A tier's ClusterNetworkPolicies in order: Accept lets the packet on, Deny
        drops it (logged, naming the policy), Pass goes on to the next tier."""
        for name in names:
            policy = self._cluster[name]
            for i, cluster_rule in enumerate(policy.ingress if side.direction == INGRESS else policy.egress):
                verdict = {ACCEPT_ACTION: side.allowed, PASS: passed}.get(cluster_rule.action) or \
                    goto(self._deny_chain(side, name))
                ports = list(self._port_matches(side, cluster_rule.ports, pods)) if cluster_rule.ports else [()]
                for peer in self._cluster_peers(side, cluster_rule.peers):
                    for port in ports:
                        self.rules.append(Rule(chain, (*peer, *port, verdict),
                                               _comment(f"cnp/{name} {side.prefix}[{i}] {cluster_rule.action}")))

    def _isolated(self, side: _Side) -> str:
        """Where every isolated pod's unmatched packets go: one chain per direction,
        logged as `drop ingress` (podnet policy drops names the isolating policies
        from the store), so a group costs one rule here, not two."""
        chain = f"{side.prefix}_isolated"
        if chain not in self._isolated_chains:
            self._isolated_chains.add(chain)
            self.chains.append(Chain(chain))
            self._logged(side, chain, f"drop {side.prefix}", DROP, "no policy rule allows it")
        return chain

    def _deny_chain(self, side: _Side, name: str) -> str:
        """Where a policy's Deny rules go: one chain per policy and direction, whose
        log names the policy (chains are numbered: policy names may hold dots)."""
        chain = self._deny_chains.get((side.prefix, name))
        if chain is None:
            chain = self._deny_chains[(side.prefix, name)] = f"{side.prefix}_deny_{len(self._deny_chains)}"
            self.chains.append(Chain(chain, comment=_comment(f"cnp/{name}")))
            self._logged(side, chain, f"drop {side.prefix} cnp/{name}", DROP, "denied by a ClusterNetworkPolicy")
        return chain

    def _cluster_peers(self, side: _Side, peers: Sequence[ClusterPeer]) -> Iterator[tuple[Match, ...]]:
        for peer in peers:
            if peer.networks:
                yield from ((match(side.remote, str(network)),) for network in peer.networks if network.version == 4)
                continue
            if peer.nodes is not None:
                members = frozenset((address,) for address in self.view.node_addresses_of(peer.nodes))
            else:
                members = frozenset((pod.pod_ip or "",) for pod in self.view.cluster_peer_pods(peer))
            if members:
                yield (match(side.remote, SetRef(self.named_set("peers", "ipv4_addr", members))),)

    def _rule_matches(self, side: _Side, policy: NetworkPolicy, policy_rule: PolicyRule,
                      pods: Sequence[Pod]) -> Iterator[tuple[Statement, ...]]:
        """Each way a connection can match the rule: (peer alternative) x (port alternative)."""
        ports = list(self._port_matches(side, policy_rule.ports, pods)) if policy_rule.ports else [()]
        for peer in self._peer_matches(side, policy, policy_rule):
            for port in ports:
                yield (*peer, *port)

    def _peer_matches(self, side: _Side, policy: NetworkPolicy, policy_rule: PolicyRule) -> Iterator[tuple[Match, ...]]:
        """One alternative per peer: a selector's pods as a set, which every rule with
        the same selectors shares (a namespace selector recurs across policies,
        and one set for it is far fewer elements than one per rule); an ipBlock as
        its prefix minus its holes. A selector matching no pod matches nothing."""
        if not policy_rule.peers:
            yield ()
            return
        for peer in policy_rule.peers:
            block = peer.ip_block
            if block is None:
                selected = self._selected(peer, policy)
                if selected:
                    yield (match(side.remote, SetRef(self.named_set("peers", "ipv4_addr", selected))),)
            elif block.cidr.version == 4:
                holes = (differs(side.remote, str(hole)) for hole in block.excepted)
                yield (match(side.remote, str(block.cidr)), *holes)

    def _selected(self, peer: Peer, policy: NetworkPolicy) -> frozenset[tuple[str, ...]]:
        """A selector peer's pod addresses, gathered once per selectors and namespace."""
        key = (peer.pod_selector, peer.namespace_selector,
               policy.metadata.namespace if peer.namespace_selector is None else "")
        known = self._selections.get(key)
        if known is None:
            known = self._selections[key] = frozenset((p.pod_ip or "",) for p in self.view.selected_by(peer, policy))
        return known

    def _port_matches(self, side: _Side, ports: Sequence[PolicyPort],
                      pods: Sequence[Pod]) -> Iterator[tuple[Match, ...]]:
        """The rule's ports as few matches as they go: single ports (named ones as
        each destination pod calls them) in one set, ranges and whole protocols on
        their own. Ingress keys the set by the group's own pods, so numbers and
        names share it; egress keeps numbers apart from names (the destinations
        are every pod)."""
        exact: set[tuple[str, ...]] = set()  # (pod IP,) protocol, port
        named: set[tuple[str, ...]] = set()  # egress only: (pod IP, protocol, port)
        for port in ports:
            protocol = port.protocol.lower()
            if port.port is None:
                yield (match(L4PROTO, protocol),)
            elif isinstance(port.port, int) and port.end_port is not None:
                yield match(L4PROTO, protocol), match(TH_DPORT, f"{port.port}-{port.end_port}")
            elif side.direction == INGRESS:
                for pod in pods:
                    numbers = [port.port] if isinstance(port.port, int) else _named(pod, port.port, port.protocol)
                    exact.update((pod.pod_ip or "", protocol, str(number)) for number in numbers)
            elif isinstance(port.port, int):
                exact.add((protocol, str(port.port)))
            else:
                named.update((pod.pod_ip or "", protocol, str(number))
                             for pod in self.view.pods for number in _named(pod, port.port, port.protocol))
        if side.direction == INGRESS and exact:
            yield (match(_NAMED_KEY, SetRef(self.named_set("ports", _NAMED_TYPE, frozenset(exact)))),)
        elif exact:
            yield (match(_PORT_KEY, SetRef(self.named_set("ports", "inet_proto . inet_service", frozenset(exact)))),)
        if named:
            yield (match(_NAMED_KEY, SetRef(self.named_set("ports", _NAMED_TYPE, frozenset(named)))),)


def _comment(text: str) -> str:
    """nft keeps at most 128 bytes of a comment; names are ASCII."""
    return text if len(text) <= 127 else text[:124] + "..."


def _named(pod: Pod, name: str, protocol: str) -> set[int]:
    return {p.container_port for c in pod.containers for p in c.ports if p.name == name and p.protocol == protocol}


def render(view: PolicyView, node: str) -> Transaction | None:
    """The node's whole policy table: what its pods' egress and ingress allow;
    None when no policy isolates any of them (no table is needed)."""
    local = [pod for pod in view.pods if pod.node_name == node]
    built = _Builder(view)
    built.side(EGRESS_SIDE, local)
    built.side(INGRESS_SIDE, local)
    if not any(element.set.endswith("_pods") for element in built.elements):
        return None
    own = Set("own", "ipv4_addr . ipv4_addr")
    entry = (match(CT_STATE, "established,related"), ACCEPT)
    tx = Transaction(TABLE).replace()
    tx.add(base_chain(TABLE, "forward"), base_chain(TABLE, "input"), *built.chains, own, *built.sets)
    tx.add(rule("forward", *entry), rule("forward", match(_OWN_KEY, SetRef("own")), ACCEPT),
           rule("forward", jump("egress")), rule("forward", jump("ingress")),
           rule("input", *entry), rule("input", jump("egress")))
    tx.add(*built.rules)
    tx.add_elements([*(Element("own", (p.pod_ip or "", p.pod_ip or "")) for p in local), *built.elements])
    return tx
