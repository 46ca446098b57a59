"""Bringing up a cluster lab: fabric, nodes, agents, pods and services.

Like kubelet, `lab up` creates each pod's namespace and wires it to its node;
the node agents keep the nodes' routes right from then on.
"""

from __future__ import annotations

import sys
import time

from podnet.kernel import netns
from podnet.kernel.netlink import Namespace, open_namespace
from podnet.lab import processes
from podnet.lab.plan import FABRIC_BRIDGE, NODE_UPLINK, ClusterPlan, NodePlan, PodPlan, plan_cluster
from podnet.lab.progress import Progress
from podnet.lab.spec import ClusterSpec
from podnet.lab.state import LabRecord
from podnet.network.apply import apply_node_network, attach_pod
from podnet.network.node import render_node_network
from podnet.store import resources
from podnet.store.sqlite import SqliteStore



def members(plan: ClusterPlan) -> dict[str, str]:
    """What `podnet exec` can enter: every pod, and every node."""
    found = {f"pod/{p.pod.metadata.key}": p.attachment.pod_namespace for p in plan.pods}
    found.update({f"node/{n.name}": n.namespace for n in plan.nodes})
    return found


def build_cluster(spec: ClusterSpec, record: LabRecord, progress: Progress) -> None:
    plan = plan_cluster(spec)
    record.members = members(plan)
    record.save()

    progress.phase("fabric and nodes", 1 + len(plan.nodes))
    netns.create(plan.fabric_namespace)
    with open_namespace(plan.fabric_namespace) as fabric:
        fabric.ensure_bridge(FABRIC_BRIDGE)
        fabric.ensure_address(FABRIC_BRIDGE, plan.fabric_address)
        progress.advance()
        for node in plan.nodes:
            _build_node(fabric, node)
            progress.advance()

    store = SqliteStore(record.store_path)
    try:
        progress.phase("node networks and agents", len(plan.nodes))
        cluster_nodes = [n.node() for n in plan.nodes]
        for node in cluster_nodes:
            resources.put(store, node)
        for node, node_plan in zip(cluster_nodes, plan.nodes):
            apply_node_network(node_plan.namespace, render_node_network(node, cluster_nodes))
            progress.advance()

        for service in plan.services:
            resources.put(store, service)
        for node_plan in plan.nodes:
            processes.start(node_plan.namespace, _agent_argv(node_plan, record), record.log_path(f"agent-{node_plan.name}"))

        # Each pod's command starts as soon as its pod is wired, so interpreters
        # start up while later pods are still being wired.
        progress.phase("pods", len(plan.pods))
        for pod_plan in plan.pods:
            netns.create(pod_plan.attachment.pod_namespace)
            attach_pod(pod_plan.attachment)
            resources.put(store, pod_plan.pod)
            _start_pod(pod_plan, record)
            progress.advance()

        progress.phase("pods ready", len(plan.pods))
        deadline = time.monotonic() + processes.READY_TIMEOUT
        for pod_plan in plan.pods:
            pod = pod_plan.pod
            if not pod.command:
                processes.wait_listening(pod_plan.attachment.pod_namespace, processes.ECHO_PORT, deadline)
            resources.put(store, pod.with_status(pod_ip=pod.pod_ip, host_ip=pod.host_ip, ready=True))
            progress.advance()
    finally:
        store.close()


def _build_node(fabric: Namespace, node: NodePlan) -> None:
    netns.create(node.namespace)
    fabric.ensure_veth(node.fabric_ifname, NODE_UPLINK, node.namespace)
    fabric.set_master(node.fabric_ifname, FABRIC_BRIDGE)
    fabric.set_up(node.fabric_ifname)
    with open_namespace(node.namespace) as ns:
        ns.ensure_address(NODE_UPLINK, node.address)
        ns.set_up(NODE_UPLINK)


def _start_pod(pod_plan: PodPlan, record: LabRecord) -> None:
    pod = pod_plan.pod
    env = {"POD_NAME": pod.metadata.name, "POD_NAMESPACE": pod.metadata.namespace,
           "POD_IP": pod.pod_ip or "", "NODE_NAME": pod.node_name or ""}
    log = record.log_path(f"pod-{pod.metadata.namespace}.{pod.metadata.name}")
    processes.start(pod_plan.attachment.pod_namespace, pod.command, log, env)


def _agent_argv(node: NodePlan, record: LabRecord) -> list[str]:
    return [sys.executable, "-m", "podnet", "agent", "--node", node.name, "--netns", node.namespace,
            "--store", str(record.store_path)]
