"""Service ports as one nftables table: the pure half of the proxy.

Lookups go through maps, as in kube-proxy's nftables mode, so a packet's cost
does not grow with the number of services:
  services       ip daddr . proto . port   -> goto the port's chain
  node_ports     proto . port (to a local address, not 127/8) -> goto its chain
  no_endpoints   ports with nowhere to go  -> reject (TCP reset / ICMP unreachable)
A port's chain picks an endpoint at random (numgen), or the one a client is
pinned to (ClientIP affinity); an endpoint's chain DNATs. Traffic from outside
the pod network, through node ports with the Cluster policy, and from a pod to
itself (hairpin) is marked and masqueraded on the way out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from podnet.model.service import Endpoint
from podnet.proxy.endpoints import ServicePortView

TABLE = "podnet-proxy"
MASQ_MARK = "0x4000"


def _id(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:12]


def port_chain(view: ServicePortView) -> str:
    return f"svc_{_id(view.name, view.cluster_ip, view.protocol, view.port)}"


def external_chain(view: ServicePortView) -> str:
    return f"ext_{_id(view.name, view.node_port)}"


def endpoint_chain(view: ServicePortView, endpoint: Endpoint) -> str:
    return f"ep_{_id(view.name, endpoint.ip, endpoint.port)}"


def affinity_set(view: ServicePortView, endpoint: Endpoint) -> str:
    return f"aff_{_id(view.name, endpoint.ip, endpoint.port)}"


def _elements(items: Iterable[str]) -> str:
    items = sorted(set(items))
    return f"elements = {{ {', '.join(items)} }}; " if items else ""


def render(views: list[ServicePortView], pod_network: str) -> str:
    """The body of `table ip podnet-proxy`, for nft.replace_table."""
    out: list[str] = []
    services, node_ports, rejects, reject_node_ports, cluster_ips = [], [], [], [], set()
    for view in views:
        cluster_ips.add(view.cluster_ip)
        key = f"{view.cluster_ip} . {view.protocol} . {view.port}"
        if view.cluster_endpoints:
            services.append(f"{key} : goto {port_chain(view)}")
        else:
            rejects.append(f"{key} : goto reject_service")
        if view.node_port:
            node_key = f"{view.protocol} . {view.node_port}"
            if view.external_endpoints:
                node_ports.append(f"{node_key} : goto {external_chain(view)}")
            elif view.external_local and view.endpoints:
                reject_node_ports.append(f"{node_key} : drop")  # Local policy, no endpoint on this node
            else:
                reject_node_ports.append(f"{node_key} : goto reject_service")

    out.append(f"\tset cluster_ips {{ type ipv4_addr; {_elements(cluster_ips)}}}")
    out.append(f"\tmap services {{ type ipv4_addr . inet_proto . inet_service : verdict; {_elements(services)}}}")
    out.append(f"\tmap node_ports {{ type inet_proto . inet_service : verdict; {_elements(node_ports)}}}")
    out.append(f"\tmap no_endpoints {{ type ipv4_addr . inet_proto . inet_service : verdict; {_elements(rejects)}}}")
    out.append(f"\tmap no_endpoint_node_ports {{ type inet_proto . inet_service : verdict; {_elements(reject_node_ports)}}}")
    out.append("""\tchain nat_prerouting { type nat hook prerouting priority dstnat; policy accept; jump services_dispatch; }
\tchain nat_output { type nat hook output priority -100; policy accept; jump services_dispatch; }
\tchain services_dispatch {
\t\tip daddr . meta l4proto . th dport vmap @services
\t\tfib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @node_ports
\t}
\tchain nat_postrouting { type nat hook postrouting priority srcnat; policy accept;
\t\tmeta mark & %(mark)s == %(mark)s meta mark set meta mark ^ %(mark)s masquerade fully-random
\t}
\tchain mark_for_masquerade { meta mark set meta mark | %(mark)s; }
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
\t}""" % {"mark": MASQ_MARK})

    for view in views:
        out.extend(_port_chains(view, pod_network))
    return "\n".join(out)


def _pick(view: ServicePortView, endpoints: tuple[Endpoint, ...]) -> list[str]:
    """Rules choosing an endpoint: the client's pinned one first (affinity), else at random."""
    rules = []
    if view.affinity_seconds is not None:
        for endpoint in endpoints:
            rules.append(f"ip saddr @{affinity_set(view, endpoint)} goto {endpoint_chain(view, endpoint)}")
    if len(endpoints) == 1:
        rules.append(f"goto {endpoint_chain(view, endpoints[0])}")
    else:
        choices = ", ".join(f"{i} : goto {endpoint_chain(view, e)}" for i, e in enumerate(endpoints))
        rules.append(f"numgen random mod {len(endpoints)} vmap {{ {choices} }}")
    return rules


def _chain(name: str, rules: list[str], comment: str) -> str:
    body = "".join(f"\t\t{rule}\n" for rule in rules)
    return f"\tchain {name} {{\n\t\tcomment \"{comment}\"\n{body}\t}}"


def _port_chains(view: ServicePortView, pod_network: str) -> list[str]:
    chains = []
    if view.cluster_endpoints:
        rules = [f"ip saddr != {pod_network} jump mark_for_masquerade"] + _pick(view, view.cluster_endpoints)
        chains.append(_chain(port_chain(view), rules, view.name))
    if view.node_port and view.external_endpoints:
        rules = [] if view.external_local else ["jump mark_for_masquerade"]  # Local keeps the client's address
        chains.append(_chain(external_chain(view), rules + _pick(view, view.external_endpoints),
                             f"{view.name} node port {view.node_port}"))
    for endpoint in sorted(set(view.endpoints), key=lambda e: (e.ip, e.port)):
        rules = [f"ip saddr {endpoint.ip} jump mark_for_masquerade"]  # a pod reaching itself
        if view.affinity_seconds is not None:
            name = affinity_set(view, endpoint)
            chains.append(f"\tset {name} {{ type ipv4_addr; flags dynamic,timeout; timeout {view.affinity_seconds}s; }}")
            rules.append(f"update @{name} {{ ip saddr }}")
        rules.append(f"meta l4proto {view.protocol} dnat ip to {endpoint.ip}:{endpoint.port}")
        chains.append(_chain(endpoint_chain(view, endpoint), rules, f"{view.name} -> {endpoint.pod}"))
    return chains
