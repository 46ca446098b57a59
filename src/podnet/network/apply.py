"""Applying rendered network values to the kernel: the thin, idempotent half."""

from __future__ import annotations

from podnet.kernel import sysctl
from podnet.kernel.netlink import open_namespace
from podnet.kernel.route import Route
from podnet.network.node import NodeNetwork
from podnet.network.pod import POD_IFNAME, PodAttachment


def apply_node_network(namespace: str, network: NodeNetwork) -> tuple[set[Route], set[Route]]:
    """Make the node match; returns the routes (added, removed) to report drift."""
    with open_namespace(namespace) as ns:
        ns.ensure_bridge(network.bridge)
        ns.ensure_address(network.bridge, network.gateway)
        changes = ns.sync_routes(network.routes)
    if network.forwarding:
        sysctl.ensure(namespace, "net.ipv4.ip_forward", "1")
    return changes


def attach_pod(attachment: PodAttachment) -> None:
    with open_namespace(attachment.node_namespace) as node:
        node.ensure_veth(attachment.host_ifname, POD_IFNAME, attachment.pod_namespace, mtu=attachment.mtu)
        node.set_master(attachment.host_ifname, attachment.bridge)
        node.set_up(attachment.host_ifname)
    with open_namespace(attachment.pod_namespace) as pod:
        pod.ensure_address(POD_IFNAME, attachment.address)
        pod.set_up(POD_IFNAME)
        pod.sync_routes(attachment.routes)
