"""Lab files: what is accepted, and the one-line error for what is not."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
import yaml

from podnet.errors import ManifestError
from podnet.lab.spec import ClusterSpec, TopologySpec, load_lab_file, parse_lab
from podnet.model.manifest import parse_resource

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def cluster(**overrides: object) -> dict:  # type: ignore[type-arg]
    doc: dict = {"apiVersion": "podnet.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": "t"},  # type: ignore[type-arg]
                 "nodes": [{"name": "n1"}, {"name": "n2"}]}
    doc.update(overrides)
    return doc


def pod(name: str, node: str | None = None, namespace: str = "default") -> dict:  # type: ignore[type-arg]
    spec: dict = {"containers": [{"name": "c"}]}  # type: ignore[type-arg]
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_is_valid(example: str) -> None:
    """A lab file loads; a Kubernetes manifest (for kubectl apply) parses whole."""
    documents = list(yaml.safe_load_all((EXAMPLES / example).read_text()))
    if str(documents[0].get("apiVersion", "")).startswith("podnet.dev/"):
        assert load_lab_file(EXAMPLES / example).name
    else:
        assert all(parse_resource(document).metadata.name for document in documents)


def test_cluster_defaults_follow_kind() -> None:
    spec = parse_lab([cluster()])
    assert isinstance(spec, ClusterSpec)
    assert spec.pod_subnet == ipaddress.ip_network("10.244.0.0/16")
    assert spec.service_subnet == ipaddress.ip_network("10.96.0.0/12")
    assert spec.node_cidr_mask == 24


def test_deployment_expands_to_named_replicas() -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}}}
    spec = parse_lab([cluster(workloads=[deployment])])
    assert [p.metadata.name for p in spec.pods] == ["web-0", "web-1", "web-2"]
    assert all(p.metadata.labels["app"] == "web" and "pod-template-hash" in p.metadata.labels for p in spec.pods)


def test_extra_yaml_documents_are_workloads() -> None:
    spec = parse_lab([cluster(), pod("a"), pod("b", "n2")])
    assert [(p.metadata.name, p.node_name) for p in spec.pods] == [("a", None), ("b", "n2")]


BAD_CLUSTERS = {
    "overlapping subnets": (
        cluster(networking={"podSubnet": "10.0.0.0/8", "serviceSubnet": "10.96.0.0/12"}),
        "networking.serviceSubnet: 10.96.0.0/12 overlaps networking.podSubnet 10.0.0.0/8"),
    "node subnet inside pod subnet": (
        cluster(networking={"nodeSubnet": "10.244.7.0/24"}),
        "networking.nodeSubnet: 10.244.7.0/24 overlaps networking.podSubnet 10.244.0.0/16"),
    "not a CIDR": (cluster(networking={"podSubnet": "10.244.0.0/33"}), "networking.podSubnet: '10.244.0.0/33' is not a network"),
    "duplicate pod name": (cluster(workloads=[pod("web"), pod("web")]),
                           "workloads[1].metadata.name: duplicate pod name 'web' in namespace default"),
    "pod on unknown node": (cluster(workloads=[pod("web", "n9")]),
                            "workloads[0].spec.nodeName: unknown node 'n9' (nodes: n1, n2)"),
    "duplicate node": (cluster(nodes=[{"name": "n1"}, {"name": "n1"}]), "nodes[1].name: duplicate node name 'n1'"),
    "no nodes": (cluster(nodes=[]), "nodes: a cluster needs at least one node"),
    "misspelt field": (cluster(networking={"podSubent": "10.1.0.0/16"}), "networking.podSubent: unknown field"),
    "bad node name": (cluster(nodes=[{"name": "Node_1"}]), "nodes[0].name: 'Node_1' is not a valid name"),
    "wrong type": (cluster(nodes="n1"), "nodes: must be a list, not a string"),
    "unknown kind": ({"kind": "Cluser"}, "kind: 'Cluser' is not a lab kind"),
    "unsupported workload": (cluster(workloads=[{"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "s"}}]),
                             "workloads[0].kind: unsupported kind 'Widget'"),
    "a workload a lab does not run": (cluster(workloads=[{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                                          "metadata": {"name": "l"},
                                                          "spec": {"holderIdentity": "n1", "renewTime": "2026-12-07T00:00:00.000000Z"}}]),
                                      "workloads[0].kind: a lab runs Namespaces, Pods, Deployments, Services, "
                                      "ConfigMaps, Secrets and ServiceAccounts, not Lease"),
    "too many nodes": (cluster(networking={"podSubnet": "10.244.0.0/23"}, nodes=[{"name": f"n{i}"} for i in range(3)]),
                       "nodes: 3 nodes do not fit: podSubnet 10.244.0.0/23 holds only 2 /24 node subnets"),
    "pod subnet smaller than a node's": (cluster(networking={"podSubnet": "10.244.0.0/26"}),
                                         "networking.podSubnet: 10.244.0.0/26 is smaller than one node's /24"),
    "node port used twice": (
        cluster(workloads=[{"apiVersion": "v1", "kind": "Service", "metadata": {"name": n},
                            "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}} for n in ("a", "b")]),
        "Service default/b spec.ports.nodePort: 30080 is already the node port of default/a"),
    "unknown backend": (cluster(networking={"backend": "udp"}), "networking.backend: 'udp' is not host-gw or vxlan"),
    "host-gw over a routed underlay": (cluster(networking={"underlay": "routed"}),
                                       "networking.backend: host-gw routes pod subnets via node IPs"),
    "clusterIP outside the service subnet": (
        cluster(workloads=[{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                            "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}}]),
        "Service default/s spec.clusterIP: 10.0.0.1 is outside serviceSubnet 10.96.0.0/12"),
}


LAB_NAME_RULE = "is not a valid name (lower-case letters, digits and '-', at most 24 for a lab)"


@pytest.mark.parametrize("name", ["a" * 25, "a" * 64, "Lab_1", "-lab"])
def test_lab_names_have_one_limit_and_one_message(name: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_lab([cluster(metadata={"name": name})])
    assert str(caught.value) == f"metadata.name: {name!r} {LAB_NAME_RULE}"
    assert parse_lab([cluster(metadata={"name": "a" * 24})]).name == "a" * 24


@pytest.mark.parametrize("case", BAD_CLUSTERS, ids=list(BAD_CLUSTERS))
def test_bad_cluster_names_the_field(case: str) -> None:
    document, message = BAD_CLUSTERS[case]
    with pytest.raises(ManifestError) as caught:
        parse_lab([document])
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def topology(**body: object) -> dict:  # type: ignore[type-arg]
    return {"apiVersion": "podnet.dev/v1alpha1", "kind": "Topology", "metadata": {"name": "t"}, **body}


HOSTS = [{"name": "red"}, {"name": "blue"}]
BAD_TOPOLOGIES = {
    "unknown endpoint": (topology(hosts=HOSTS, links=[{"endpoints": ["red:a", "green:b"]}]),
                         "links[0].endpoints[1]: unknown node 'green'"),
    "three endpoints": (topology(hosts=HOSTS, links=[{"endpoints": ["red:a", "blue:b", "red:c"]}]),
                        "links[0].endpoints: a link has exactly two endpoints"),
    "interface name too long": (topology(hosts=HOSTS, links=[{"endpoints": ["red:a-very-long-ifname", "blue:b"]}]),
                                "'a-very-long-ifname' is not an interface name"),
    "interface used twice": (topology(hosts=HOSTS, links=[{"endpoints": ["red:a", "blue:b"]},
                                                          {"endpoints": ["red:a", "blue:c"]}]),
                             "interface a on red is already used by links[0]"),
    "address used twice": (topology(hosts=HOSTS, links=[{"endpoints": ["red:a", "blue:b"],
                                                          "addresses": ["10.0.0.1/24", "10.0.0.1/24"]}]),
                           "10.0.0.1 is already used by red:a"),
    "gateway off every subnet": (
        topology(hosts=[{"name": "red", "routes": [{"to": "default", "via": "10.9.9.9"}]}, {"name": "blue"}],
                 links=[{"endpoints": ["red:a", "blue:b"], "addresses": ["10.0.0.1/24", "10.0.0.2/24"]}]),
        "red.routes[0].via: 10.9.9.9 is not on any subnet red is connected to"),
    "address on a switch port": (
        topology(hosts=HOSTS, switches=[{"name": "br"}], links=[{"endpoints": ["br:a", "red:b"], "addresses": ["10.0.0.1/24"]}]),
        "br is a switch; its ports have no addresses"),
    "name reused": (topology(hosts=HOSTS, routers=[{"name": "red"}], links=[]), "'red' is already the name of a host"),
    "bad address": (topology(hosts=HOSTS, links=[{"endpoints": ["red:a", "blue:b"], "addresses": ["10.0.0.300/24"]}]),
                    "'10.0.0.300/24' is not an address with a prefix"),
}


@pytest.mark.parametrize("case", BAD_TOPOLOGIES, ids=list(BAD_TOPOLOGIES))
def test_bad_topology_names_the_field(case: str) -> None:
    document, message = BAD_TOPOLOGIES[case]
    with pytest.raises(ManifestError) as caught:
        parse_lab([document])
    assert message in str(caught.value)


def test_topology_switch_in_host() -> None:
    spec = parse_lab([topology(hosts=HOSTS, switches=[{"name": "br", "host": "red", "addresses": ["10.0.0.5/24"]}],
                               links=[{"endpoints": ["blue:b", "br:b-br"], "addresses": ["10.0.0.1/24"]}])])
    assert isinstance(spec, TopologySpec)
    assert spec.switch("br").host == "red"  # type: ignore[union-attr]


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Cluster\nnodes:\n  - name: [n1\n")
    with pytest.raises(ManifestError) as caught:
        load_lab_file(bad)
    assert str(caught.value).startswith(f"{bad}: line ")
    assert "malformed YAML" in str(caught.value)


def test_a_file_that_is_not_text_is_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "x.yaml"
    binary.write_bytes(b"kind: Cluster\n\xff\xfe\x00garbage")
    with pytest.raises(ManifestError, match=r"x.yaml: not UTF-8 text: byte 0xff at offset 14"):
        load_lab_file(binary)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read lab file: No such file"):
        load_lab_file(tmp_path / "nope.yaml")


def test_round_trip_of_a_lab_file(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump_all([cluster(), pod("a", "n1")]))
    spec = load_lab_file(path)
    assert isinstance(spec, ClusterSpec) and spec.nodes == ("n1", "n2")


def test_the_proxy_mode_is_nftables_or_iptables() -> None:
    assert parse_lab([cluster()]).proxy_mode == "nftables"  # type: ignore[union-attr]
    for mode in ("iptables", "userspace"):
        assert parse_lab([cluster(networking={"proxyMode": mode})]).proxy_mode == mode  # type: ignore[union-attr]
    with pytest.raises(ManifestError, match="networking.proxyMode"):
        parse_lab([cluster(networking={"proxyMode": "ipvs"})])


def test_the_ipam_is_host_local_or_dhcp() -> None:
    assert parse_lab([cluster()]).ipam == "host-local"  # type: ignore[union-attr]
    assert parse_lab([cluster(networking={"ipam": "dhcp"})]).ipam == "dhcp"  # type: ignore[union-attr]
    with pytest.raises(ManifestError, match="networking.ipam: 'static' is not host-local or dhcp"):
        parse_lab([cluster(networking={"ipam": "static"})])


def test_a_dhcp_lab_serves_each_node_its_own_subnet() -> None:
    from podnet.lab.dhcp import dnsmasq_argv, ipam_config
    from podnet.lab.plan import NodePlan, UnderlaySlot
    from podnet.lab.state import LabRecord

    record = LabRecord("l", "Cluster", "/x.yaml")
    node = NodePlan("n1", "pn-l.n1", (UnderlaySlot("172.18.0.2/16", "172.18.0.1"),), ("10.244.3.0/24",), "n1")
    argv = dnsmasq_argv(node, record)
    assert "--dhcp-range=10.244.3.10,10.244.3.254,255.255.255.0,1h" in argv
    assert "--dhcp-option=option:router,10.244.3.1" in argv and "--interface=cni0" in argv and "--port=0" in argv
    assert Path(ipam_config(record)["daemonSocketPath"]).name == "dhcp.sock"


def test_the_iptables_backend_is_nft_or_legacy_and_for_the_iptables_mode() -> None:
    iptables = {"proxyMode": "iptables"}
    assert parse_lab([cluster(networking=iptables)]).iptables_backend == "nft"  # type: ignore[union-attr]
    legacy = parse_lab([cluster(networking={**iptables, "iptablesBackend": "legacy"})])
    assert legacy.iptables_backend == "legacy"  # type: ignore[union-attr]
    with pytest.raises(ManifestError, match="'ebtables' is not nft or legacy"):
        parse_lab([cluster(networking={**iptables, "iptablesBackend": "ebtables"})])
    with pytest.raises(ManifestError, match="applies to proxyMode: iptables only"):
        parse_lab([cluster(networking={"iptablesBackend": "legacy"})])


TYPES = {
    "no apiVersion": ({"kind": "Pod", "metadata": {"name": "p"}}, "workloads[0].apiVersion: is required"),
    "a version that does not exist": ({"apiVersion": "apps/v2", "kind": "Deployment", "metadata": {"name": "d"}},
                                      'workloads[0].apiVersion: no matches for kind "Deployment" in version "apps/v2"'),
    "a kind in another group's version": ({"apiVersion": "v1", "kind": "Deployment", "metadata": {"name": "d"}},
                                          'workloads[0].apiVersion: no matches for kind "Deployment" in version "v1"'),
}


@pytest.mark.parametrize("case", TYPES, ids=list(TYPES))
def test_a_workloads_type_is_one_the_api_serves(case: str) -> None:
    document, message = TYPES[case]
    with pytest.raises(ManifestError, match=re.escape(message)):
        parse_lab([cluster(workloads=[document])])
