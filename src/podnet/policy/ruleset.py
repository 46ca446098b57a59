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

from collections.abc import Sequence

from podnet.kernel.nflog import OBSERVED_GROUP
from podnet.kernel.nftables import Chain, Element, Map, Set, Table, Transaction, base_chain, hooks
from podnet.kernel.nftables.rules import (
    ACCEPT, CT_STATE, DROP, IP_DADDR, IP_SADDR, Limit, Log, Rule, SetRef, Statement, VerdictMap, concat, goto, jump,
    match, rule,
)
from podnet.model.clusternetworkpolicy import ACCEPT as ACCEPT_ACTION
from podnet.model.clusternetworkpolicy import ADMIN, BASELINE, PASS
from podnet.model.networkpolicy import INGRESS
from podnet.model.pod import Pod
from podnet.policy.evaluator import PolicyView
from podnet.policy.matches import EGRESS_SIDE, INGRESS_SIDE, Matches, Side

TABLE = Table("ip", hooks.POLICY)
DROPS_GROUP = OBSERVED_GROUP  # where dropped (and, in audit mode, would-be dropped) first packets are logged
LOGGED_PER_SECOND = 50  # and as many at once, per log rule (a direction, a denying policy): floods are sampled
_OWN_KEY = concat(IP_SADDR, IP_DADDR)
class _Builder:
    """Chains and rules of one node's table; its matches (and their sets) come from Matches."""

    def __init__(self, view: PolicyView) -> None:
        self.view = view
        self.chains: list[Chain] = []
        self.rules: list[Rule] = []
        self.sets: list[Set] = []
        self.elements: list[Element] = []
        self.matches = Matches(view, self.sets, self.elements)
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
                ports = list(self.matches.of_ports(side, cluster_rule.ports, pods)) if cluster_rule.ports else [()]
                for peer in self.matches.of_cluster_peers(side, cluster_rule.peers):
                    for port in ports:
                        self.rules.append(Rule(chain, (*peer, *port, verdict),
                                               _comment(f"cnp/{name} {side.prefix}[{i}] {cluster_rule.action}")))

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
