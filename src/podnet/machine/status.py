"""How a joined machine stands: its lease, its agent, and the peers it routes to,
read from the store, the agent's endpoint and the kernel's routes here."""

from __future__ import annotations

import time
from dataclasses import dataclass

from podnet.kernel import netns
from podnet.kernel.netlink import own_routes
from podnet.kernel.route import Route
from podnet.machine.membership import Joined, open_cluster_store
from podnet.model.lease import NODE_LEASES, Lease
from podnet.model.node import Node
from podnet.network.leases import expiry
from podnet.observe.client import AgentUnreachable, fetch
from podnet.store import resources


@dataclass(frozen=True)
class Peer:
    name: str
    address: str
    pod_cidr: str
    ready: bool
    route: Route | None  # the kernel's route here to its pods, if there is one


@dataclass(frozen=True)
class NodeStatus:
    name: str
    address: str
    pod_cidr: str
    lease_expires: float | None  # the subnet lease; None once it is gone from the store
    registered: bool  # the Node is in the store
    ready: bool
    heartbeat_age: float | None  # seconds since the agent last renewed the node's Lease
    agent: str  # "answering" or why not
    peers: tuple[Peer, ...]


def status(node: Joined) -> NodeStatus:
    store = open_cluster_store(node.store, node.tls)
    try:
        nodes = resources.list_kind(store, Node)[0]
        lease = resources.get(store, Lease, NODE_LEASES, node.name)
        expires = expiry(store, node.name, node.pod_cidr)
    finally:
        store.close()
    me = next((n for n in nodes if n.metadata.name == node.name), None)
    routes = {r.dst: r for r in own_routes()}
    peers = tuple(Peer(n.metadata.name, n.internal_ip or "", n.pod_cidr or "", n.ready, routes.get(n.pod_cidr or ""))
                  for n in sorted(nodes, key=lambda n: n.metadata.name) if n.metadata.name != node.name)
    try:
        fetch(netns.OWN, "/healthz", timeout=1.0)
        agent = "answering"
    except AgentUnreachable:
        agent = "not answering on 127.0.0.1:10249"
    return NodeStatus(node.name, node.address, node.pod_cidr, expires, me is not None, bool(me and me.ready),
                      time.time() - lease.renewed if isinstance(lease, Lease) else None, agent, peers)


