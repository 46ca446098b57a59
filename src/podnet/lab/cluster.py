"""Bringing up a cluster lab: fabric, nodes, the control plane and the agents,
then the workloads, applied as `podnet apply` applies them.

The control plane schedules the pods and each node's agent runs its own, as
kubelet does: a namespace per pod, wired by the network's CNI plugins. The
agents keep the nodes' routes and services right from then on.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podnet.api import cluster
from podnet.api.apply import apply
from podnet.api.cluster import ClusterConfig
from podnet.cni.entry import socket_path_for
from podnet.cni.install import install as install_plugins
from podnet.errors import LabError, PodnetError
from podnet.kernel import netns, sysctl
from podnet.kernel.route import RTPROT_STATIC, Route
from podnet.kernel.netlink import Netns, open_namespace
from podnet.kernel.node import NamespaceKernel
from podnet.lab import apiserver, dhcp, names, processes
from podnet.lab.plan import (FABRIC_BRIDGE, INTERNET, INTERNET_ADDRESSES, NODE_UPLINK, ClusterPlan, NodePlan,
                             internet_hosts, plan_cluster)
from podnet.lab.progress import Progress
from podnet.lab.spec import ClusterSpec, Network
from podnet.lab.state import LabRecord
from podnet.network.apply import FORWARDING, apply_node_network
from podnet.network.leases import NodeLeases
from podnet.network.node import POD_BRIDGE, pod_mtu, render_node_network
from podnet.controller.endpointslices import desired as desired_slices
from podnet.model.endpointslice import EndpointSlice, by_service
from podnet.model.families import family_of, host_port
from podnet.model.manifest import Resource
from podnet.model.namespace import BUILT_IN, Namespace
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.store import resources
from podnet.store.base import Store
from podnet.store.location import open_store

if TYPE_CHECKING:
    from podnet.lab.certificates import Authority

NETWORK_NAME = "podnet"
AGENT_START_TIMEOUT = 10.0


def members(plan: ClusterPlan) -> dict[str, str]:
    """What `podnet exec` can enter besides pods (found by name, as they come and go):
    every node, and the internet."""
    found = {f"node/{n.name}": n.namespace for n in plan.nodes}
    found[f"host/{INTERNET}"] = plan.internet_namespace
    return found


def node_network_config(node: NodePlan, record: LabRecord, backend: str, ipam: str) -> dict[str, Any]:
    """The conflist a node's runtime would find in /etc/cni/net.d: bridge with
    host-local IPAM over the node's pod subnets, a range set per family with the
    primary first (or DHCP, whose lease brings the default route), then portmap.
    Over VXLAN, pod interfaces get the underlay MTU less the tunnel's headers."""
    state = record.directory / "cni" / node.name
    by_dhcp = ipam == "dhcp"
    return {
        "cniVersion": "1.1.0",
        "name": NETWORK_NAME,
        "plugins": [
            {"type": "podnet-bridge", "bridge": POD_BRIDGE, "isGateway": True, "isDefaultGateway": not by_dhcp,
             "hairpinMode": True, "mtu": pod_mtu(backend, underlay_family=family_of(node.ip)),
             "ipam": dhcp.ipam_config(record) if by_dhcp else
             {"type": "podnet-host-local", "ranges": [[{"subnet": cidr}] for cidr in node.pod_cidrs],
              "dataDir": str(state / "ipam")}},
            {"type": "podnet-portmap", "capabilities": {"portMappings": True}, "stateDir": str(state / "portmap")},
        ],
    }


def cluster_config(spec: ClusterSpec) -> ClusterConfig:
    upstream = INTERNET_ADDRESSES[spec.ip_families[0]][0].split("/")[0]  # the internet's DNS, in the primary family
    return ClusterConfig(cidr_list(spec.pod_subnets), cidr_list(spec.service_subnets), spec.dns_domain, [upstream],
                         spec.node_cidr_mask, spec.node_cidr_mask_v6, backend=spec.backend,
                         proxy_mode=spec.proxy_mode, iptables_backend=spec.iptables_backend)


def cidr_list(subnets: tuple[Network, ...]) -> str:
    """As kube's flags take them: "10.244.0.0/16,fd00:10:244::/56"."""
    return ",".join(str(subnet) for subnet in subnets)


def build_cluster(spec: ClusterSpec, record: LabRecord, progress: Progress) -> None:
    if spec.ipam == "dhcp":
        dhcp.check_installed()
    plan = plan_cluster(spec)
    record.members = members(plan)
    record.save()

    progress.phase("fabric, internet and nodes", 2 + len(plan.nodes))
    from podnet.lab import certificates  # cryptography takes 80 ms to import: lab up alone pays it
    ca = certificates.authority(record.pki, f"podnet lab {plan.lab} CA")
    apiserver.issue_certificates(ca, record, plan, spec)
    create_namespace(plan.fabric_namespace)
    with open_namespace(plan.fabric_namespace) as fabric:
        fabric.ensure_bridge(FABRIC_BRIDGE)
        for address in plan.fabric_addresses:
            fabric.ensure_address(FABRIC_BRIDGE, address)
        progress.advance()
        _build_internet(fabric, plan, record, spec.ip_families)
        progress.advance()
        for node in plan.nodes:
            build_node(fabric, node)
            progress.advance()
        if spec.store == "etcd":
            _build_etcd(fabric, plan, spec, record, ca)

    store = open_store(record.store)
    try:
        progress.phase("control plane and agents", len(plan.nodes) + 1)
        cluster.save(store, cluster_config(spec))
        cluster.bootstrap(store)
        cluster_nodes = [n.node() for n in plan.nodes]
        leases = NodeLeases(store, spec.pod_subnets, spec.node_mask)
        for node in cluster_nodes:
            leased = leases.acquire(node.metadata.name, node.internal_ip or "")  # the plan predicts; the store decides
            if leased != node.pod_cidrs:
                raise LabError(f"node {node.metadata.name} was planned {', '.join(node.pod_cidrs)} but its leases are "
                               f"{', '.join(leased)}")
            resources.put(store, node)
        install_plugins(record.directory / "cni" / "bin")
        if spec.ipam == "dhcp":
            dhcp.start_daemon(plan.fabric_namespace, record)  # before any pod asks it for a lease
        processes.start(plan.fabric_namespace, ["podnet", "controller", "--store", record.store_inside],
                        record.log_path("controller"), supervised=True)
        apiserver.start(record, plan)
        progress.advance()
        for node, node_plan in zip(cluster_nodes, plan.nodes):
            apply_node_network(NamespaceKernel(node_plan.namespace),
                               render_node_network(node, cluster_nodes, cidr_list(spec.pod_subnets), spec.backend))
            start_agent(node_plan, record, spec)
        for node_plan in plan.nodes:
            wait_for_agent(node_plan)
            progress.advance()

        # The workloads go in as `podnet apply` sends them: the control plane
        # schedules them and the agents run them.
        workloads = lab_workloads(spec, plan)
        expected = {(p.metadata.namespace, p.metadata.name) for p in (*spec.pods, *plan.extra_pods)}
        progress.phase("pods ready", len(expected))
        apply(store, workloads)
        _wait_ready(store, expected, progress)
        _wait_endpoints(store)
    finally:
        store.close()


def lab_workloads(spec: ClusterSpec, plan: ClusterPlan) -> list[Resource]:
    """The lab file's workloads, with the cluster DNS and a Namespace for each
    namespace they name and do not declare (a lab file may simply use one)."""
    workloads: list[Resource] = [*spec.workloads, *plan.extra_pods, *plan.extra_services]
    declared = {w.metadata.name for w in workloads if isinstance(w, Namespace)}
    used = sorted({w.metadata.namespace for w in workloads if w.metadata.namespace} - declared - set(BUILT_IN))
    return [*(Namespace.named(name) for name in used), *workloads]


ENDPOINTS_WAIT = 5.0  # seconds; the control plane writes slices within one pass of a pod turning ready


def _ready_endpoints(slices: list[EndpointSlice]) -> dict[tuple[str, str], frozenset[str]]:
    return {key: frozenset(e.address for s in own for e in s.endpoints if e.ready)
            for key, own in by_service(slices).items()}


def _wait_endpoints(store: Store) -> None:
    """Once the pods are ready, their Services' slices a moment later: so the summary
    `lab up` prints, and the first request a user sends, find every endpoint. A
    control plane slower than that is not an error; the slices follow."""
    deadline = time.monotonic() + ENDPOINTS_WAIT
    while time.monotonic() < deadline:
        services = resources.list_kind(store, Service)[0]
        pods = resources.list_kind(store, Pod)[0]
        written = resources.list_kind(store, EndpointSlice)[0]
        if _ready_endpoints(written) == _ready_endpoints(desired_slices(services, pods)):
            return
        time.sleep(0.02)


def _wait_ready(store: Store, expected: set[tuple[str, str]], progress: Progress) -> None:
    deadline = time.monotonic() + processes.READY_TIMEOUT
    done = 0
    while True:
        pods = resources.list_kind(store, Pod)[0]
        ready = {(p.metadata.namespace, p.metadata.name) for p in pods if p.ready} & expected
        progress.advance(len(ready) - done)
        done = len(ready)
        if ready == expected:
            return
        if time.monotonic() > deadline:
            waiting = sorted(f"{ns}/{name}" for ns, name in expected - ready)
            reasons = {f"{p.metadata.namespace}/{p.metadata.name}": p.reason for p in pods if p.reason}
            detail = ", ".join(f"{w} ({reasons[w]})" if w in reasons else w for w in waiting[:5])
            raise LabError(f"{len(waiting)} pod(s) not ready after {processes.READY_TIMEOUT:.0f} s: {detail}; "
                           "see the agents' logs in the lab's directory")
        time.sleep(0.02)


def start_agent(node: NodePlan, record: LabRecord, spec: ClusterSpec) -> None:
    conflist = record.directory / "cni" / node.name / "net.conflist"
    conflist.parent.mkdir(parents=True, exist_ok=True)
    conflist.write_text(json.dumps(node_network_config(node, record, spec.backend, spec.ipam), indent=2))
    if spec.ipam == "dhcp":
        dhcp.start_server(node, record)
    issue_kubelet_certificate(node, record)
    processes.start(node.namespace, agent_argv(node, record, spec), record.log_path(f"agent-{node.name}"),
                    own_etc=False, supervised=True)


ETCD_MEMBERS = 3
ETCD_HOST_OFFSET = 250  # members at .250-.252 of the fabric's first /24, clear of the nodes
ETCD_START_TIMEOUT = 20.0


def _build_etcd(fabric: Netns, plan: ClusterPlan, spec: ClusterSpec, record: LabRecord, ca: Authority) -> None:
    """A three-member etcd cluster, each member in a namespace of its own on the
    fabric, as a control plane's etcd runs on machines of its own, speaking TLS
    and asking clients and peers for a certificate from the lab's CA."""
    from podnet.lab import certificates

    base = spec.node_subnet.network_address + ETCD_HOST_OFFSET
    gateway = plan.fabric_address.split("/")[0]
    members = [(f"etcd-{i}", str(base + i)) for i in range(ETCD_MEMBERS)]
    prefix = 24 if spec.node_subnet.version == 4 else spec.node_subnet.prefixlen
    cluster = ",".join(f"{name}=https://{host_port(ip, 2380)}" for name, ip in members)
    certificates.issue(ca, record.pki, "podnet", "podnet")  # the client certificate every podnet process shows
    for name, ip in members:
        namespace = names.member_namespace(plan.lab, name)
        create_namespace(namespace)
        fabric.ensure_veth(name, NODE_UPLINK, namespace)
        fabric.set_master(name, FABRIC_BRIDGE)
        fabric.set_up(name)
        with open_namespace(namespace) as ns:
            ns.ensure_address(NODE_UPLINK, f"{ip}/{prefix}")
            ns.set_up(NODE_UPLINK)
            ns.set_up("lo")
            ns.add_route(Route("default", via=gateway), protocol=RTPROT_STATIC)
        own = certificates.issue(ca, record.pki, name, name, (ip,))
        client, peer = host_port(ip, 2379), host_port(ip, 2380)
        processes.start(namespace, [
            "etcd", "--name", name, "--data-dir", str(record.directory / name),
            "--listen-client-urls", f"https://{client}", "--advertise-client-urls", f"https://{client}",
            "--listen-peer-urls", f"https://{peer}", "--initial-advertise-peer-urls", f"https://{peer}",
            # clients and peers alike need a certificate from the lab's CA, as kubeadm sets up etcd
            "--client-cert-auth", "--trusted-ca-file", own.cafile, "--cert-file", own.certfile,
            "--key-file", own.keyfile,
            "--peer-client-cert-auth", "--peer-trusted-ca-file", own.cafile, "--peer-cert-file", own.certfile,
            "--peer-key-file", own.keyfile,
            "--initial-cluster", cluster, "--initial-cluster-state", "new", "--auto-compaction-retention", "1",
            "--initial-cluster-token", plan.lab],
            record.log_path(name))
        record.members[f"host/{name}"] = namespace
    record.etcd = [host_port(ip, 2379) for _, ip in members]
    record.etcd_namespace = plan.fabric_namespace
    record.etcd_tls = True
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


def create_namespace(name: str) -> None:
    """A namespace of the lab's, where no link checks its IPv6 addresses for
    duplicates (the default for the links made in it): every address is
    planned, and a link-local address held "tentative" for a second or two
    would leave its link unable to ask for a neighbour's MAC, so nothing could
    be sent over IPv6 for the first moments of a lab."""
    netns.create(name)
    sysctl.ensure_all_path(str(netns.path(name)), {"net/ipv6/conf/default/accept_dad": "0",
                                                   "net/ipv6/conf/all/accept_dad": "0"})


def _build_internet(fabric: Netns, plan: ClusterPlan, record: LabRecord, families: tuple[str, ...]) -> None:
    """The outside world: the fabric routes to it (its default route, in the
    nodes' eyes), and it serves HTTP and DNS for example.org, in each of the
    lab's families."""
    create_namespace(plan.internet_namespace)
    fabric.ensure_veth(INTERNET, NODE_UPLINK, plan.internet_namespace)
    fabric.set_up(INTERNET)
    with open_namespace(plan.internet_namespace) as internet:
        internet.set_up(NODE_UPLINK)
        for family in families:
            address, gateway = INTERNET_ADDRESSES[family]
            fabric.ensure_address(INTERNET, gateway)
            sysctl.ensure(plan.fabric_namespace, FORWARDING[family], "1")
            internet.ensure_address(NODE_UPLINK, address)
            internet.add_route(Route("default", via=gateway.split("/")[0]))
    hosts = record.directory / "internet-hosts"
    hosts.write_text(internet_hosts(families))
    processes.start(plan.internet_namespace, [], record.log_path("internet-http"), env={"POD_NAME": INTERNET},
                    supervised=True)
    processes.start(plan.internet_namespace, ["podnet", "dns", "--store", str(record.directory / "internet.db"),
                                              "--zone", "example.org", "--hosts", str(hosts)],
                    record.log_path("internet-dns"), supervised=True)


def build_node(fabric: Netns, node: NodePlan) -> None:
    create_namespace(node.namespace)
    fabric.ensure_veth(node.fabric_ifname, NODE_UPLINK, node.namespace)
    if node.router_port:  # a routed underlay: the fabric is this node's router, not its switch
        for slot in node.slots:
            fabric.ensure_address(node.fabric_ifname, slot.router_port)  # type: ignore[arg-type]
    else:
        fabric.set_master(node.fabric_ifname, FABRIC_BRIDGE)
    fabric.set_up(node.fabric_ifname)
    with open_namespace(node.namespace) as ns:
        for slot in node.slots:
            ns.ensure_address(NODE_UPLINK, slot.address)
        ns.set_up(NODE_UPLINK)
        # Everything beyond the cluster goes to the fabric, which leads to the lab's internet only.
        for slot in node.slots:
            ns.add_route(Route("default", via=slot.gateway), protocol=RTPROT_STATIC)


def wait_for_agent(node: NodePlan) -> None:
    socket = Path(socket_path_for(str(netns.path(node.namespace))))
    deadline = time.monotonic() + AGENT_START_TIMEOUT
    while not socket.exists():
        if time.monotonic() > deadline:
            raise LabError(f"the agent of node {node.name} did not start; see its log in the lab's directory")
        time.sleep(0.02)


def issue_kubelet_certificate(node: NodePlan, record: LabRecord) -> None:
    """The node's kubelet endpoint serves at its address with a certificate from
    the lab's CA, as a kubelet's serving certificate is signed by the cluster's."""
    from podnet.lab import certificates

    ca = certificates.load_authority(record.pki / "ca.crt", record.pki / "ca.key")
    certificates.issue(ca, record.pki, f"kubelet-{node.name}", f"system:node:{node.name}", node.ips,
                       organizations=("system:nodes",))


def agent_argv(node: NodePlan, record: LabRecord, spec: ClusterSpec) -> list[str]:
    cni = record.directory / "cni"
    pki = record.pki
    return [sys.executable, "-m", "podnet", "agent", "--node", node.name, "--netns", node.namespace,
            "--store", record.store_inside, "--cluster-cidr", cidr_list(spec.pod_subnets), "--backend", spec.backend,
            "--proxy-mode", spec.proxy_mode, "--iptables-backend", spec.iptables_backend,
            "--cni-conf", str(cni / node.name / "net.conflist"), "--cni-bin", str(cni / "bin"),
            "--pods-prefix", names.lab_prefix(record.name), "--state-dir", str(cni / node.name / "kubelet"),
            "--logs", str(record.log_path("x").parent), "--address", node.ip,
            "--tls-cert-file", str(pki / f"kubelet-{node.name}.crt"),
            "--tls-private-key-file", str(pki / f"kubelet-{node.name}.key"), "--client-ca-file", str(pki / "ca.crt")]
