"""Applying rendered network values to the kernel: the thin, idempotent half."""

from __future__ import annotations

from podnet.kernel.node import NodeKernel
from podnet.kernel.route import Route
from podnet.model.families import IPV4, IPV6
from podnet.network.node import NodeNetwork, egress_transaction

FORWARDING = {IPV4: "net.ipv4.ip_forward", IPV6: "net.ipv6.conf.all.forwarding"}


def apply_node_network(kernel: NodeKernel, network: NodeNetwork) -> tuple[set[Route], set[Route]]:
    """Make the node match; returns the routes (added, removed) to report drift."""
    with kernel.netlink() as ns:
        if IPV6 in network.families and ns.index(network.bridge) is None:
            # a new bridge checks no IPv6 address for duplicates, not even its link-local
            # one, which the node's neighbour solicitations to pods need at once (as CNI's bridge)
            ns.ensure_bridge(network.bridge, up=False)
            kernel.ensure_sysctl(f"net/ipv6/conf/{network.bridge}/accept_dad", "0")
        ns.ensure_bridge(network.bridge)
        for gateway in network.gateways:
            ns.ensure_address(network.bridge, gateway)
        device = network.vxlan
        if device is not None:  # the device and its peers before the routes that use them
            ns.ensure_vxlan(device.name, device.vni, device.local, device.port, device.mac, device.mtu)
            for address in device.addresses:
                ns.ensure_address(device.name, address)
            ns.sync_neighbours(device.name, network.neighbours)
            ns.sync_forwarding(device.name, network.fdb)
        changes = ns.sync_routes(network.routes)
    if network.forwarding:
        for family in network.families:
            kernel.ensure_sysctl(FORWARDING[family], "1")
    for family, egress in network.egress:
        kernel.nft.run(egress_transaction(egress, family))
    return changes
