"""Bringing up a cluster lab: fabric, nodes, agents, pods and services.

Like kubelet, `lab up` creates each pod's namespace and has it wired by CNI: the
network's plugins are exec'd in the node's namespace, where they hand the work
to that node's agent. The agents keep the nodes' routes right from then on.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from podnet.cni.entry import socket_path_for
from podnet.cni.install import install as install_plugins
from podnet.cni.result import Result
from podnet.cni.runtime import Attachment, NetworkConfigList, Runtime
from podnet.errors import LabError, PodnetError
from podnet.kernel import netns, sysctl
from podnet.kernel.route import RTPROT_STATIC, Route
from podnet.kernel.netlink import Netns, open_namespace
from podnet.kernel.node import NamespaceKernel
from podnet.lab import names, processes
from podnet.lab.plan import (FABRIC_BRIDGE, INTERNET, INTERNET_ADDRESS, INTERNET_GATEWAY, INTERNET_HOSTS,
                             NODE_PORT_RANGE, NODE_UPLINK, RESERVED_SERVICE_OFFSETS, ClusterPlan, NodePlan, PodPlan,
                             plan_cluster, resolv_conf)
from podnet.lab.progress import Progress
from podnet.lab.spec import ClusterSpec
from podnet.lab.state import LabRecord
from podnet.network.apply import apply_node_network
from podnet.network.leases import SubnetLeases
from podnet.network.node import POD_BRIDGE, pod_mtu, render_node_network
from podnet.model.service import Service
from podnet.store import allocator, resources
from podnet.store.base import Store
from podnet.store.location import open_store

NETWORK_NAME = "podnet"
AGENT_START_TIMEOUT = 10.0


def members(plan: ClusterPlan) -> dict[str, str]:
    """What `podnet exec` can enter: every pod, every node, and the internet."""
    found = {f"pod/{p.pod.metadata.key}": p.namespace for p in plan.pods}
    found.update({f"node/{n.name}": n.namespace for n in plan.nodes})
    found[f"host/{INTERNET}"] = plan.internet_namespace
    return found


def node_network_config(node: NodePlan, record: LabRecord, backend: str = "host-gw") -> dict[str, Any]:
    """The conflist a node's runtime would find in /etc/cni/net.d: bridge with
    host-local IPAM over the node's pod subnet, then portmap. Over VXLAN, pod
    interfaces get the underlay MTU less the tunnel's 50 bytes."""
    state = record.directory / "cni" / node.name
    return {
        "cniVersion": "1.1.0",
        "name": NETWORK_NAME,
        "plugins": [
            {"type": "podnet-bridge", "bridge": POD_BRIDGE, "isGateway": True, "isDefaultGateway": True,
             "hairpinMode": True, "mtu": pod_mtu(backend),
             "ipam": {"type": "podnet-host-local", "ranges": [[{"subnet": node.pod_cidr}]],
                      "dataDir": str(state / "ipam")}},
            {"type": "podnet-portmap", "capabilities": {"portMappings": True}, "stateDir": str(state / "portmap")},
        ],
    }


def build_cluster(spec: ClusterSpec, record: LabRecord, progress: Progress) -> None:
    plan = plan_cluster(spec)
    record.members = members(plan)
    record.save()

    progress.phase("fabric, internet and nodes", 2 + len(plan.nodes))
    netns.create(plan.fabric_namespace)
    with open_namespace(plan.fabric_namespace) as fabric:
        fabric.ensure_bridge(FABRIC_BRIDGE)
        fabric.ensure_address(FABRIC_BRIDGE, plan.fabric_address)
        progress.advance()
        _build_internet(fabric, plan, record)
        progress.advance()
        for node in plan.nodes:
            build_node(fabric, node)
            progress.advance()
        if spec.store == "etcd":
            _build_etcd(fabric, plan, spec, record)

    store = open_store(record.store)
    try:
        progress.phase("node networks and agents", len(plan.nodes))
        cluster_nodes = [n.node() for n in plan.nodes]
        leases = SubnetLeases(store, spec.pod_subnet, spec.node_cidr_mask)
        for node in cluster_nodes:
            leased = leases.acquire(node.metadata.name, node.internal_ip or "")  # the plan predicts; the store decides
            if leased != node.pod_cidr:
                raise LabError(f"node {node.metadata.name} was planned {node.pod_cidr} but its lease is {leased}")
            resources.put(store, node)
        for service in allocate_service_addresses(store, spec, plan.services):
            resources.put(store, service)
        plugin_dir = record.directory / "cni" / "bin"
        install_plugins(plugin_dir)
        for node, node_plan in zip(cluster_nodes, plan.nodes):
            apply_node_network(NamespaceKernel(node_plan.namespace),
                               render_node_network(node, cluster_nodes, str(spec.pod_subnet), spec.backend))
            processes.start(node_plan.namespace, agent_argv(node_plan, record, spec),
                            record.log_path(f"agent-{node_plan.name}"))
        for node_plan in plan.nodes:
            wait_for_agent(node_plan)
            progress.advance()

        # Each pod's command starts as soon as its pod is wired, so interpreters
        # start up while later pods are still being wired.
        progress.phase("pods (CNI ADD)", len(plan.pods))
        runtimes = {n.name: Runtime([str(plugin_dir)], record.directory / "cni" / n.name / "results",
                                    str(netns.path(n.namespace))) for n in plan.nodes}
        networks = {n.name: NetworkConfigList.parse(node_network_config(n, record, spec.backend)) for n in plan.nodes}
        wired = []
        for pod_plan in plan.pods:
            netns.create(pod_plan.namespace)
            node = pod_plan.node.name
            outcome = Result.parse(runtimes[node].add(networks[node], Attachment(
                pod_plan.container_id, pod_plan.netns_path, "eth0", pod_plan.cni_args)))
            pod = pod_plan.pod.with_status(pod_ip=outcome.ips[0].address.split("/")[0], host_ip=pod_plan.node.ip,
                                           ready=False)
            resources.put(store, pod)
            netns.write_etc(pod_plan.namespace, "resolv.conf", resolv_conf(pod, spec))
            _start_pod(pod_plan, pod, record, spec)
            wired.append((pod_plan, pod))
            progress.advance()

        progress.phase("pods ready", len(wired))
        _wait_ready(store, wired)
        progress.advance(len(wired))
    finally:
        store.close()


def allocate_service_addresses(store: Store, spec: ClusterSpec, services: tuple[Service, ...]) -> list[Service]:
    """ClusterIPs from the service subnet and node ports from 30000-32767, through
    the store's allocators; addresses and ports a manifest names are claimed first."""
    ips = allocator.cluster_ips(store, spec.service_subnet, RESERVED_SERVICE_OFFSETS)
    ports = allocator.node_ports(store, *NODE_PORT_RANGE)
    for service in services:
        owner = service.metadata.key
        if service.cluster_ip and not service.headless:
            ips.claim(service.cluster_ip, owner)
        for port in service.ports:
            if port.node_port:
                ports.claim(str(port.node_port), owner)
    allocated = []
    for service in services:
        owner = service.metadata.key
        if service.cluster_ip is None and service.type != "ExternalName":
            service = service.with_cluster_ip(ips.allocate(owner))
        if service.exposes_node_ports:
            service = service.with_node_ports([p.node_port or int(ports.allocate(owner)) for p in service.ports])
        allocated.append(service)
    return allocated


ETCD_MEMBERS = 3
ETCD_HOST_OFFSET = 250  # members at .250-.252 of the fabric's first /24, clear of the nodes
ETCD_START_TIMEOUT = 20.0


def _build_etcd(fabric: Netns, plan: ClusterPlan, spec: ClusterSpec, record: LabRecord) -> None:
    """A three-member etcd cluster, each member in a namespace of its own on the
    fabric, as a control plane's etcd runs on machines of its own."""
    base = spec.node_subnet.network_address + ETCD_HOST_OFFSET
    gateway = plan.fabric_address.split("/")[0]
    members = [(f"etcd-{i}", str(base + i)) for i in range(ETCD_MEMBERS)]
    cluster = ",".join(f"{name}=http://{ip}:2380" for name, ip in members)
    for name, ip in members:
        namespace = names.member_namespace(plan.lab, name)
        netns.create(namespace)
        fabric.ensure_veth(name, NODE_UPLINK, namespace)
        fabric.set_master(name, FABRIC_BRIDGE)
        fabric.set_up(name)
        with open_namespace(namespace) as ns:
            ns.ensure_address(NODE_UPLINK, f"{ip}/24")
            ns.set_up(NODE_UPLINK)
            ns.set_up("lo")
            ns.add_route(Route("default", via=gateway), protocol=RTPROT_STATIC)
        processes.start(namespace, [
            "etcd", "--name", name, "--data-dir", str(record.directory / name),
            "--listen-client-urls", f"http://{ip}:2379", "--advertise-client-urls", f"http://{ip}:2379",
            "--listen-peer-urls", f"http://{ip}:2380", "--initial-advertise-peer-urls", f"http://{ip}:2380",
            "--initial-cluster", cluster, "--initial-cluster-state", "new", "--auto-compaction-retention", "1",
            "--initial-cluster-token", plan.lab],
            record.log_path(name))
        record.members[f"host/{name}"] = namespace
    record.etcd = [f"{ip}:2379" for _, ip in members]
    record.etcd_namespace = plan.fabric_namespace
    record.save()
    store = open_store(record.store)
    deadline = time.monotonic() + ETCD_START_TIMEOUT
    try:
        while True:
            try:
                store.revision()
                return
            except PodnetError as err:
                if time.monotonic() > deadline:
                    raise LabError(f"the lab's etcd cluster did not come up: {err}") from None
                time.sleep(0.2)
    finally:
        store.close()


def _build_internet(fabric: Netns, plan: ClusterPlan, record: LabRecord) -> None:
    """The outside world: the fabric routes to it (its default route, in the
    nodes' eyes), and it serves HTTP and DNS for example.org."""
    netns.create(plan.internet_namespace)
    fabric.ensure_veth(INTERNET, NODE_UPLINK, plan.internet_namespace)
    fabric.ensure_address(INTERNET, INTERNET_GATEWAY)
    fabric.set_up(INTERNET)
    sysctl.ensure(plan.fabric_namespace, "net.ipv4.ip_forward", "1")
    with open_namespace(plan.internet_namespace) as internet:
        internet.ensure_address(NODE_UPLINK, INTERNET_ADDRESS)
        internet.set_up(NODE_UPLINK)
        internet.add_route(Route("default", via=INTERNET_GATEWAY.split("/")[0]))
    hosts = record.directory / "internet-hosts"
    hosts.write_text(INTERNET_HOSTS)
    processes.start(plan.internet_namespace, [], record.log_path("internet-http"), env={"POD_NAME": INTERNET})
    processes.start(plan.internet_namespace, ["podnet", "dns", "--store", str(record.directory / "internet.db"),
                                              "--zone", "example.org", "--hosts", str(hosts)],
                    record.log_path("internet-dns"))


def build_node(fabric: Netns, node: NodePlan) -> None:
    netns.create(node.namespace)
    fabric.ensure_veth(node.fabric_ifname, NODE_UPLINK, node.namespace)
    if node.router_port:  # a routed underlay: the fabric is this node's router, not its switch
        fabric.ensure_address(node.fabric_ifname, node.router_port)
    else:
        fabric.set_master(node.fabric_ifname, FABRIC_BRIDGE)
    fabric.set_up(node.fabric_ifname)
    with open_namespace(node.namespace) as ns:
        ns.ensure_address(NODE_UPLINK, node.address)
        ns.set_up(NODE_UPLINK)
        # Everything beyond the cluster goes to the fabric, which leads to the lab's internet only.
        ns.add_route(Route("default", via=node.gateway), protocol=RTPROT_STATIC)


def wait_for_agent(node: NodePlan) -> None:
    socket = Path(socket_path_for(str(netns.path(node.namespace))))
    deadline = time.monotonic() + AGENT_START_TIMEOUT
    while not socket.exists():
        if time.monotonic() > deadline:
            raise LabError(f"the agent of node {node.name} did not start; see its log in the lab's directory")
        time.sleep(0.02)


def _start_pod(plan: PodPlan, pod: Any, record: LabRecord, spec: ClusterSpec) -> None:
    """The downward API's usual variables, and where the lab's store and zone are
    (what `podnet dns` in the cluster-DNS pod reads)."""
    env = {"POD_NAME": pod.metadata.name, "POD_NAMESPACE": pod.metadata.namespace,
           "POD_IP": pod.pod_ip or "", "NODE_NAME": pod.node_name or "",
           "PODNET_STORE": record.store_inside, "PODNET_DNS_DOMAIN": spec.dns_domain,
           "PODNET_DNS_UPSTREAMS": INTERNET_ADDRESS.split("/")[0]}
    log = record.log_path(f"pod-{pod.metadata.namespace}.{pod.metadata.name}")
    processes.start(plan.namespace, pod.command, log, env)


def _wait_ready(store: Store, wired: list[tuple[PodPlan, Any]]) -> None:
    deadline = time.monotonic() + processes.READY_TIMEOUT
    for pod_plan, pod in wired:
        port = processes.ECHO_PORT if not pod.command else 53 if pod.command[:2] == ("podnet", "dns") else None
        if port:
            processes.wait_listening(pod_plan.namespace, port, deadline)
        resources.put(store, pod.with_status(pod_ip=pod.pod_ip, host_ip=pod.host_ip, ready=True))


def agent_argv(node: NodePlan, record: LabRecord, spec: ClusterSpec) -> list[str]:
    return [sys.executable, "-m", "podnet", "agent", "--node", node.name, "--netns", node.namespace,
            "--store", record.store_inside, "--cluster-cidr", str(spec.pod_subnet), "--backend", spec.backend]
