"""Where every podnet base chain sits: one table of hooks and priorities.

Chains at the same hook run in priority order, lowest first, across all tables;
the named values are nft's (`dstnat` is -100, `srcnat` 100). A table's base
chains are declared only through `objects.base_chain`, so what is written here is what
the kernel gets, and the reason for each place is next to it.
"""

from __future__ import annotations

from dataclasses import dataclass

RAW, DSTNAT, FILTER, SRCNAT = -300, -100, 0, 100


@dataclass(frozen=True)
class Hook:
    type: str  # filter, nat
    hook: str  # prerouting, input, forward, output, postrouting
    priority: int
    policy: str = "accept"


PROXY = "podnet-proxy"
CNI_MASQUERADE = "podnet-cni"
CNI_MAC_GUARD = "podnet-macspoof"
PORTMAP = "podnet-portmap"
NODE_EGRESS = "podnet-egress"
TOPOLOGY_NAT = "podnet"
POLICY = "podnet-policy"
TRACE = "podnet-trace"
FLOWS = "podnet-flows"

HOOKS: dict[str, dict[str, Hook]] = {
    PROXY: {
        # service VIPs are rewritten before routing, so the route is the endpoint's (kube-proxy's dstnat)
        "nat_prerouting": Hook("nat", "prerouting", DSTNAT),
        # a node's own connections to a VIP: output's NAT runs before the reroute that follows it
        "nat_output": Hook("nat", "output", DSTNAT),
        # masquerade once routing has chosen the way out, so the node's address on that way is used
        "nat_postrouting": Hook("nat", "postrouting", SRCNAT),
        # (ports without endpoints are refused in the NAT chains above: they see each connection's
        # first packet only, and a filter chain here would cost every packet a hook)
    },
    PORTMAP: {
        # published host ports are rewritten where service VIPs are, before routing
        "prerouting": Hook("nat", "prerouting", DSTNAT),
        # the host's own connections to its published ports (curl localhost:8080)
        "output": Hook("nat", "output", DSTNAT),
        # hairpin and localhost traffic is masqueraded after routing, as the reference portmap does
        "postrouting": Hook("nat", "postrouting", SRCNAT),
    },
    CNI_MASQUERADE: {
        # ipMasq: source NAT after routing, like the reference's POSTROUTING rule
        "postrouting": Hook("nat", "postrouting", SRCNAT),
    },
    CNI_MAC_GUARD: {
        # spoofed frames are dropped as they enter the bridge, before it learns their MAC
        "prerouting": Hook("filter", "prerouting", RAW),
    },
    NODE_EGRESS: {
        # pod traffic leaving the pod network takes the node's address once its way out is known
        "postrouting": Hook("nat", "postrouting", SRCNAT),
    },
    TOPOLOGY_NAT: {
        # the seeds' `iptables -t nat -A POSTROUTING ... -j MASQUERADE`
        "postrouting": Hook("nat", "postrouting", SRCNAT),
    },
    TRACE: {
        # `podnet trace --live` marks its packet before any other chain sees it, so every chain reports it
        "prerouting": Hook("filter", "prerouting", RAW - 50),
        "output": Hook("filter", "output", RAW - 50),
    },
    FLOWS: {
        # each new connection's first packet is logged once its NAT is settled (masquerade runs at srcnat),
        # and only if nothing dropped it: drops are logged where they happen
        "postrouting": Hook("filter", "postrouting", SRCNAT + 10),
        # connections to the node itself, after the policy's input chain
        "input": Hook("filter", "input", FILTER + 20),
    },
    POLICY: {
        # after DNAT (policies see endpoint pods, not VIPs) and after the proxy's rejects of empty services
        "forward": Hook("filter", "forward", FILTER + 10),
        # a pod's connections to its own node are its egress too (the node's own traffic to its pods is
        # always allowed, so there is no output chain)
        "input": Hook("filter", "input", FILTER + 10),
    },
}


def base_chain_hook(table: str, chain: str) -> Hook:
    try:
        return HOOKS[table][chain]
    except KeyError:
        raise KeyError(f"{table}/{chain} is not in podnet's table of hooks (kernel/nftables/hooks.py)") from None
