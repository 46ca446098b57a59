"""Nodes joining and leaving a running cluster lab (`podnet lab node add|remove`).

A joining node gets an address on the underlay, a pod subnet leased through the
store, its namespace and agent; a leaving one loses its pods, agent and
namespace, and gives its lease back. The other agents see the Node appear or go
in the store and add or remove their routes (and, over vxlan, neighbour and FDB
entries) within a second; an agent that was down catches up when it starts,
because it syncs to the store's nodes rather than applying changes one by one.
"""

from __future__ import annotations

import shutil

from podnet.errors import LabError, ManifestError
from podnet.kernel import netns
from podnet.kernel.netlink import open_namespace
from podnet.kernel.node import NamespaceKernel
from podnet.lab import names
from podnet.lab.cluster import build_node, cidr_list, start_agent, wait_for_agent
from podnet.lab.lifecycle import forget_agent_socket
from podnet.lab.plan import NODE_UPLINK, NodePlan, node_plan, underlay_slots
from podnet.lab.spec import ClusterSpec, load_lab_file
from podnet.lab.state import LabRecord, load
from podnet.model.fields import check_dns_label
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.network.apply import apply_node_network
from podnet.network.leases import NodeLeases
from podnet.network.node import render_node_network
from podnet.store import resources
from podnet.store.base import Store
from podnet.store.location import open_store


def _cluster(lab: str) -> tuple[LabRecord, ClusterSpec]:
    record = load(lab)
    if record is None:
        raise LabError(f"no lab named {lab} is up")
    spec = load_lab_file(record.source)
    if not isinstance(spec, ClusterSpec):
        raise LabError(f"lab {lab} is a topology; nodes join clusters")
    return record, spec


def _nodes(store: Store) -> list[Node]:
    return resources.list_kind(store, Node)[0]


def _joining(lab: str, name: str, what: str) -> tuple[LabRecord, ClusterSpec]:
    """The lab a new node or machine NAME joins, its name checked first."""
    try:
        check_dns_label(name, "name")
    except ManifestError as err:
        raise LabError(f"{what} {err}") from None
    return _cluster(lab)


def add_node(lab: str, name: str) -> NodePlan:
    record, spec = _joining(lab, name, "node")
    store = open_store(record.store)
    try:
        nodes = _nodes(store)
        if any(n.metadata.name == name for n in nodes):
            raise LabError(f"lab {lab} already has a node {name}")
        if netns.exists(names.member_namespace(lab, name)):  # the internet, an etcd member, a namespace of pods
            raise LabError(f"{name!r} is already taken in lab {lab} ({names.member_namespace(lab, name)}); "
                           "choose another node name")
        taken = {n.internal_ip for n in nodes}
        slots = next((s for s in underlay_slots(spec) if s[0].ip not in taken), None)
        if slots is None:
            raise LabError(f"the node subnet {spec.node_subnet} has no room for another node")
        leases = NodeLeases(store, spec.pod_subnets, spec.node_mask)
        pod_cidrs = leases.acquire(name, slots[0].ip)
        plan = node_plan(lab, name, slots, pod_cidrs)
        try:
            with open_namespace(names.lab_namespace(lab)) as fabric:
                build_node(fabric, plan)
            node = plan.node()
            resources.put(store, node)
            apply_node_network(NamespaceKernel(plan.namespace),
                               render_node_network(node, _nodes(store), cidr_list(spec.pod_subnets), spec.backend))
            start_agent(plan, record, spec)
            wait_for_agent(plan)
        except BaseException:
            _remove(store, record, name, plan.namespace, pod_cidrs, leases)
            raise
        record.members[f"node/{name}"] = plan.namespace
        record.save()
        return plan
    finally:
        store.close()


def add_machine(lab: str, name: str) -> NodePlan:
    """A bare machine on the lab's underlay: its namespace, uplink, address and
    default route, and nothing of podnet's. It plays a real machine for `podnet
    node join` (run in it with `podnet exec NAME -- ...`)."""
    record, spec = _joining(lab, name, "machine")
    namespace = names.member_namespace(lab, name)
    if netns.exists(namespace):
        raise LabError(f"{name!r} is already taken in lab {lab} ({namespace}); choose another name")
    store = open_store(record.store)
    try:
        taken = {n.internal_ip for n in _nodes(store)}
    finally:
        store.close()
    for member in record.members.values():  # other bare machines hold addresses the store does not know
        if netns.exists(member):
            with open_namespace(member) as ns:
                if ns.index(NODE_UPLINK) is not None:
                    taken |= {a.split("/")[0] for a in ns.addresses(NODE_UPLINK)}
    slots = next((s for s in underlay_slots(spec) if s[0].ip not in taken), None)
    if slots is None:
        raise LabError(f"the node subnet {spec.node_subnet} has no room for another machine")
    plan = node_plan(lab, name, slots, ())
    try:
        with open_namespace(names.lab_namespace(lab)) as fabric:
            build_node(fabric, plan)
    except BaseException:
        netns.delete(namespace)
        raise
    record.members[f"host/{name}"] = namespace
    record.save()
    return plan


def remove_node(lab: str, name: str) -> list[str]:
    """Returns the pods that went with the node."""
    record, spec = _cluster(lab)
    store = open_store(record.store)
    try:
        node = next((n for n in _nodes(store) if n.metadata.name == name), None)
        if node is None and f"host/{name}" in record.members:  # a bare machine, never joined (or joined and left)
            namespace = record.members.pop(f"host/{name}")
            netns.kill_processes_in([namespace])
            netns.delete(namespace)
            record.save()
            return []
        if node is None:
            raise LabError(f"lab {lab} has no node {name}")
        netns.kill_processes_in([names.member_namespace(lab, name)])  # its agent first, or it would tear down too
        gone = []
        for pod in resources.list_kind(store, Pod)[0]:
            if pod.node_name == name:  # the node's agent goes too: nobody else would end them
                sandbox = names.pod_namespace(lab, pod.metadata.namespace, pod.metadata.name)
                netns.kill_processes_in([sandbox])
                netns.delete(sandbox)
                resources.delete(store, pod)
                gone.append(pod.metadata.key)
        shutil.rmtree(record.directory / "cni" / name, ignore_errors=True)
        _remove(store, record, name, names.member_namespace(lab, name), node.pod_cidrs,
                NodeLeases(store, spec.pod_subnets, spec.node_mask))
        record.save()
        return gone
    finally:
        store.close()


def _remove(store: Store, record: LabRecord, name: str, namespace: str, pod_cidrs: tuple[str, ...],
            leases: NodeLeases) -> None:
    netns.kill_processes_in([namespace])
    forget_agent_socket(namespace)
    netns.delete(namespace)  # its uplink's fabric end goes with it
    for node in _nodes(store):
        if node.metadata.name == name:
            resources.delete(store, node)
    leases.release(name, pod_cidrs)
    record.members.pop(f"node/{name}", None)
    record.members.pop(f"host/{name}", None)
