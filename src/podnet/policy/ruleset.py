"""A node's NetworkPolicies as one nftables table: the pure half of the enforcer.

Each node judges the connections of its own pods: their egress where they
leave, their ingress where they arrive. Bridged traffic between pods of one
node passes the same hook as routed traffic (the node's namespace keeps
net.bridge.bridge-nf-call-iptables and -ip6tables at 1), and both are seen after service DNAT,
so a connection to a ClusterIP is judged at its endpoint pod.

  forward, input    replies and established connections pass, and IPv6's neighbour
                    discovery; a pod to itself passes; then the source's egress,
                    then the destination's ingress
  egress, ingress   local pod IP -> goto the chain of the policies isolating it
                    (a map per family: `ingress_pods`, `ingress_pods6`)
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

Dual stack: one `inet` table for both families, not an `ip` table and an `ip6`
one beside it. nftables mixes no families within a set (ipv4_addr or
ipv6_addr), so the dispatch maps, the `own` set and every set of addresses
come in one per family (matches.py); but what a pod's policies say is one list
of rules whatever the family, and in an inet table both families' dispatch
maps go to the same chain per group of pods, where only the address matches
are per family: rules of ports alone, the tiers' order, the logged drops and
audit mode are written once. The table is replaced whole in one transaction,
so a policy change reaches IPv4 and IPv6 at the same instant (two tables would
take two), and a table of IPv4 pods alone holds nothing of IPv6 (it is what it
was before dual stack, in an inet table). The nft Fake's tracer walks inet
tables as the kernel does (a field of the other family matches nothing).

Neighbour discovery (and MLD, router solicitations and advertisements) is
never judged: it is IPv6's ARP, and a pod that cannot answer a neighbour
solicitation can be reached by nothing. The hooks do see it: bridged between
pods of a node it passes `forward` (bridge-nf-call-ip6tables), and a pod's
solicitations of its gateway pass `input`, as packets conntrack leaves
untracked (so the established rule does not let them on). Both chains accept
those ICMPv6 types before any pod's rules, wherever the table has IPv6 pods.
"""

from __future__ import annotations

from collections.abc import Sequence

from podnet.kernel.nflog import OBSERVED_GROUP
from podnet.kernel.nftables import Chain, Element, Map, Set, Table, Transaction, base_chain, hooks
from podnet.kernel.nftables.rules import (
    ACCEPT, CT_STATE, DROP, L4PROTO, AnonSet, Field, Limit, Log, Rule, SetRef, Statement, VerdictMap, concat, daddr,
    goto, jump, match, rule, saddr,
)
from podnet.model.clusternetworkpolicy import ACCEPT as ACCEPT_ACTION
from podnet.model.clusternetworkpolicy import ADMIN, BASELINE, PASS
from podnet.model.families import FAMILIES, IPV6, family_of, version
from podnet.model.networkpolicy import INGRESS
from podnet.model.pod import Pod
from podnet.policy.evaluator import PolicyView
from podnet.policy.matches import (
    ADDRESS_TYPE, EGRESS_SIDE, INGRESS_SIDE, Alternative, Matches, Side, family_named,
)

TABLE = Table("inet", hooks.POLICY)
LEGACY_TABLE = Table("ip", hooks.POLICY)  # where IPv4 policies were before dual stack: removed on upgrade
DROPS_GROUP = OBSERVED_GROUP  # where dropped (and, in audit mode, would-be dropped) first packets are logged
LOGGED_PER_SECOND = 50  # and as many at once, per log rule (a direction, a denying policy): floods are sampled
ICMPV6_TYPE = Field("icmpv6 type")
# The ICMPv6 a link needs to work, which conntrack leaves untracked: MLD, router and neighbour discovery
LINK_CONTROL = AnonSet(("mld-listener-query", "mld-listener-report", "mld-listener-done", "nd-router-solicit",
                        "nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert", "mld2-listener-report"))


class _Builder:
    """Chains and rules of one node's table; its matches (and their sets) come from Matches."""

    def __init__(self, view: PolicyView, families: Sequence[str]) -> None:
        self.view = view
        self.families = families  # those of the node's pods: each has its dispatch maps
        self.chains: list[Chain] = []
        self.rules: list[Rule] = []
        self.sets: list[Set] = []
        self.elements: list[Element] = []
        self.matches = Matches(view, families, self.sets, self.elements)
        self._deny_chains: dict[tuple[str, str], str] = {}  # (direction, policy) -> its deny chain
        self._isolated_chains: set[str] = set()
        self._policies = {p.metadata.key: p for p in view.policies}
        self._cluster = {c.metadata.name: c for c in view.cluster_policies}

    def side(self, side: Side, local_pods: Sequence[Pod]) -> None:
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
        self.chains.append(Chain(side.prefix))
        for family in self.families:
            self.sets.append(Map(family_named(dispatch, family), ADDRESS_TYPE[family], "verdict"))
            self.rules.append(rule(side.prefix, VerdictMap(side.local(family), SetRef(family_named(dispatch, family)))))
        for n, ((admin, keys, audit, baseline), pods) in enumerate(sorted(groups.items())):
            chain = f"{side.prefix}_{n}"
            self.chains.append(Chain(chain, comment=_comment(", ".join([*admin, *keys, *baseline]))))
            self.elements.extend(Element(family_named(dispatch, family_of(ip)), (ip,), goto(chain))
                                 for pod in pods for ip in pod.pod_ips)
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

    def _network_policies(self, side: Side, chain: str, keys: Sequence[str], pods: Sequence[Pod],
                          allowed: Statement) -> None:
        for key in keys:
            policy = self._policies[key]
            for i, policy_rule in enumerate(side.rules_of(policy)):
                comment = _comment(f"{key} {side.prefix}[{i}]")
                for statements in self.matches.of_rule(side, policy, policy_rule, pods):
                    self.rules.append(Rule(chain, (*statements, allowed), comment))

    def _logged(self, side: Side, chain: str, prefix: str, verdict: Statement, comment: str) -> None:
        self.rules.append(rule(chain, Limit(LOGGED_PER_SECOND, LOGGED_PER_SECOND), Log(DROPS_GROUP, _comment(prefix))))
        self.rules.append(rule(chain, verdict, comment=comment))

    def _tier(self, side: Side, chain: str, names: Sequence[str], pods: Sequence[Pod], passed: Statement) -> None:
        """A tier's ClusterNetworkPolicies in order: Accept lets the packet on, Deny
        drops it (logged, naming the policy), Pass goes on to the next tier."""
        for name in names:
            policy = self._cluster[name]
            for i, cluster_rule in enumerate(policy.ingress if side.direction == INGRESS else policy.egress):
                verdict = {ACCEPT_ACTION: side.allowed, PASS: passed}.get(cluster_rule.action) or \
                    goto(self._deny_chain(side, name))
                ports = list(self.matches.of_ports(side, cluster_rule.ports, pods)) if cluster_rule.ports \
                    else [Alternative()]
                comment = _comment(f"cnp/{name} {side.prefix}[{i}] {cluster_rule.action}")
                for matches in self.matches.joined(self.matches.of_cluster_peers(side, cluster_rule.peers), ports):
                    self.rules.append(Rule(chain, (*matches, verdict), comment))

    def _isolated(self, side: Side) -> str:
        """Where every isolated pod's unmatched packets go: one chain per direction,
        logged as `drop ingress` (podnet policy drops names the isolating policies
        from the store), so a group costs one rule here, not two."""
        chain = f"{side.prefix}_isolated"
        if chain not in self._isolated_chains:
            self._isolated_chains.add(chain)
            self.chains.append(Chain(chain))
            self._logged(side, chain, f"drop {side.prefix}", DROP, "no policy rule allows it")
        return chain

    def _deny_chain(self, side: Side, name: str) -> str:
        """Where a policy's Deny rules go: one chain per policy and direction, whose
        log names the policy (chains are numbered: policy names may hold dots)."""
        chain = self._deny_chains.get((side.prefix, name))
        if chain is None:
            chain = self._deny_chains[(side.prefix, name)] = f"{side.prefix}_deny_{len(self._deny_chains)}"
            self.chains.append(Chain(chain, comment=_comment(f"cnp/{name}")))
            self._logged(side, chain, f"drop {side.prefix} cnp/{name}", DROP, "denied by a ClusterNetworkPolicy")
        return chain


def _comment(text: str) -> str:
    """nft keeps at most 128 bytes of a comment; names are ASCII."""
    return text if len(text) <= 127 else text[:124] + "..."


def render(view: PolicyView, node: str) -> Transaction | None:
    """The node's whole policy table: what its pods' egress and ingress allow;
    None when no policy isolates any of them (no table is needed)."""
    local = [pod for pod in view.pods if pod.node_name == node]
    families = [f for f in FAMILIES if any(family_of(ip) == f for pod in local for ip in pod.pod_ips)]
    built = _Builder(view, families)
    built.side(EGRESS_SIDE, local)
    built.side(INGRESS_SIDE, local)
    dispatching = {family_named(f"{side.prefix}_pods", f) for side in (EGRESS_SIDE, INGRESS_SIDE) for f in families}
    if not any(element.set in dispatching for element in built.elements):
        return None
    own = [Set(family_named("own", f), f"{ADDRESS_TYPE[f]} . {ADDRESS_TYPE[f]}") for f in families]
    entry = [(match(CT_STATE, "established,related"), ACCEPT)]
    if IPV6 in families:
        entry.append((match(L4PROTO, "ipv6-icmp"), match(ICMPV6_TYPE, LINK_CONTROL), ACCEPT))
    to_itself = [(match(concat(saddr(version(f)), daddr(version(f))), SetRef(family_named("own", f))), ACCEPT)
                 for f in families]
    tx = Transaction(TABLE).replace()
    tx.add(base_chain(TABLE, "forward"), base_chain(TABLE, "input"), *built.chains, *own, *built.sets)
    tx.add(*(rule("forward", *r) for r in (*entry, *to_itself)), rule("forward", jump("egress")),
           rule("forward", jump("ingress")), *(rule("input", *r) for r in entry), rule("input", jump("egress")))
    tx.add(*built.rules)
    tx.add_elements([*(Element(family_named("own", family_of(ip)), (ip, ip)) for p in local for ip in p.pod_ips),
                     *built.elements])
    return tx
