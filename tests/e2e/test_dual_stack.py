"""IPv6 and dual-stack labs: every pod gets an address in each family of its
cluster, pods reach pods on other nodes in both families without NAT (host-gw
routes each family via the peer's address of that family; VXLAN carries both in
one device), egress is masqueraded behind the node in both families, and an
IPv6-only lab runs VXLAN over an IPv6 underlay. Each lab is probed the moment
it is up: no address, the nodes' and bridges' link-local ones included, may
still be checking for duplicates then."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest
import yaml

from podnet.kernel import netns
from tests.helpers import in_netns, podnet

LABS = {  # lab name: (ipFamilies, backend, underlay)
    "test_dualhgw": (["IPv4", "IPv6"], "host-gw", "bridged"),
    "test_dualvx": (["IPv4", "IPv6"], "vxlan", "routed"),  # each node on a segment of its own, behind a router
    "test_v6only": (["IPv6"], "vxlan", "bridged"),
}
NODES = ("n1", "n2", "n3")


def lab_file(name: str, families: list[str], backend: str, underlay: str) -> dict:  # type: ignore[type-arg]
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "labels": {"app": "web"}},
             "spec": {"nodeName": node, "containers": [{"name": "echo", "image": "podnet/echo",
                                                        "ports": [{"containerPort": 80}]}]}}
            for pod, node in zip("abc", NODES)]
    services = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                 "spec": {"ipFamilyPolicy": "PreferDualStack", "type": "NodePort", "selector": {"app": "web"},
                          "ports": [{"port": 80, "nodePort": 30080}]}}]
    return {"apiVersion": "podnet.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
            "networking": {"ipFamilies": families, "backend": backend, "underlay": underlay},
            "nodes": [{"name": node} for node in NODES[:3 if len(families) == 2 else 2]],
            "workloads": pods[:3 if len(families) == 2 else 2] + services}


@pytest.fixture(scope="module", params=list(LABS))
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = request.param
    path = tmp_path_factory.mktemp("dual") / f"{name}.yaml"
    path.write_text(yaml.safe_dump(lab_file(name, *LABS[name])))
    podnet("lab", "up", str(path))
    yield name
    podnet("lab", "down", name)


def families(lab: str) -> list[str]:
    return LABS[lab][0]


def pod(lab: str, name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(podnet("get", "pod", name, "--lab", lab, "-o", "json").stdout)


def node(lab: str, name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(podnet("get", "node", name, "--lab", lab, "-o", "json").stdout)


def ip_of(addresses: list[str], family: str) -> str:
    return next(a for a in addresses if (":" in a) == (family == "IPv6"))


def url(address: str) -> str:
    return f"http://[{address}]/get" if ":" in address else f"http://{address}/get"


def curl(lab: str, pod_name: str, address: str) -> dict:  # type: ignore[type-arg]
    return json.loads(in_netns(f"pn-{lab}.default.{pod_name}", "curl", "-s", "-m", "5", url(address)).stdout)


def test_pods_and_nodes_have_an_address_and_a_subnet_in_each_family_the_primary_first(lab: str) -> None:
    a = pod(lab, "a")["status"]
    pod_ips = [entry["ip"] for entry in a["podIPs"]]
    assert [":" in ip for ip in pod_ips] == [f == "IPv6" for f in families(lab)] and a["podIP"] == pod_ips[0]
    spec = node(lab, "n1")["spec"]
    assert [":" in cidr for cidr in spec["podCIDRs"]] == [f == "IPv6" for f in families(lab)]
    assert spec["podCIDR"] == spec["podCIDRs"][0]
    inside = in_netns(f"pn-{lab}.default.a", "ip", "-o", "address", "show", "dev", "eth0").stdout.splitlines()
    for ip in pod_ips:  # usable at once: no duplicate address detection holds it back
        (line,) = [line for line in inside if f" {ip}/" in line]
        assert "tentative" not in line


@pytest.mark.parametrize("family", ["IPv4", "IPv6"])
def test_pods_on_other_nodes_answer_in_each_family_seeing_the_callers_own_address(lab: str, family: str) -> None:
    if family not in families(lab):
        pytest.skip(f"{lab} has no {family}")
    caller = ip_of([e["ip"] for e in pod(lab, "a")["status"]["podIPs"]], family)
    target = ip_of([e["ip"] for e in pod(lab, "b")["status"]["podIPs"]], family)
    answer = curl(lab, "a", target)
    assert answer["pod"] == "b" and answer["origin"] == caller
    ping = in_netns(f"pn-{lab}.default.a", "ping", "-c", "2", "-i", "0.2", "-W", "1", target)
    assert " 0% packet loss" in ping.stdout


@pytest.mark.parametrize("family", ["IPv4", "IPv6"])
def test_egress_to_the_internet_is_masqueraded_behind_the_node_in_each_family(lab: str, family: str) -> None:
    if family not in families(lab):
        pytest.skip(f"{lab} has no {family}")
    internet = "2001:db8::10" if family == "IPv6" else "203.0.113.10"
    node_ip = ip_of([a["address"] for a in node(lab, "n2")["status"]["addresses"] if a["type"] == "InternalIP"], family)
    assert curl(lab, "b", internet)["origin"] == node_ip


def test_vxlan_carries_ipv6_pod_packets_in_udp_8472_over_the_primary_underlay(lab: str) -> None:
    if LABS[lab][1] != "vxlan":
        pytest.skip("host-gw routes pod packets as they are")
    target = ip_of([e["ip"] for e in pod(lab, "b")["status"]["podIPs"]], "IPv6")
    mtu = 1450 if "IPv4" in families(lab) else 1430  # the outer header is IPv4's or IPv6's
    assert f"mtu {mtu}" in in_netns(f"pn-{lab}.default.a", "ip", "link", "show", "eth0").stdout
    capture = subprocess.Popen(netns.exec_argv(f"pn-{lab}.n2", ["tcpdump", "-ni", "eth0", "-c", "3", "udp", "port", "8472"]),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.5)
    in_netns(f"pn-{lab}.default.a", "ping", "-c", "3", "-i", "0.2", target)
    out, _ = capture.communicate(timeout=10)
    outer = [line for line in out.splitlines() if ".8472: " in line]
    underlay = " IP6 fd00:172:18:" if families(lab) == ["IPv6"] else " IP 172.18."
    assert len(outer) == 3 and all(underlay in line for line in outer) and "ICMP6, echo request" in out, out


def test_a_prefer_dual_stack_service_gets_a_cluster_ip_in_each_family_of_the_cluster(lab: str) -> None:
    spec = json.loads(podnet("get", "service", "web", "--lab", lab, "-o", "json").stdout)["spec"]
    assert spec["ipFamilyPolicy"] == "PreferDualStack" and spec["ipFamilies"] == families(lab)
    assert [":" in ip for ip in spec["clusterIPs"]] == [f == "IPv6" for f in families(lab)]
    slices = json.loads(podnet("get", "endpointslices", "--lab", lab, "-o", "json").stdout)["items"]
    assert sorted(s["addressType"] for s in slices if s["metadata"]["labels"].get("kubernetes.io/service-name") == "web") \
        == sorted(families(lab))


def test_require_dual_stack_is_refused_on_a_single_stack_cluster_in_kube_apiservers_words(
        cluster_lab: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "both"},
                                        "spec": {"ipFamilyPolicy": "RequireDualStack", "selector": {"app": "x"},
                                                 "ports": [{"port": 80}]}}))
    refused = podnet("apply", "-f", str(manifest), "--lab", cluster_lab, check=False)
    assert refused.returncode != 0
    assert 'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack ' \
           'services' in refused.stderr


def cluster_ips(lab: str) -> list[str]:
    return json.loads(podnet("get", "service", "web", "--lab", lab, "-o", "json").stdout)["spec"]["clusterIPs"]


def test_the_service_answers_on_its_ipv6_cluster_ip_and_node_port(lab: str) -> None:
    v6 = ip_of(cluster_ips(lab), "IPv6")
    assert curl(lab, "a", v6)["pod"] in "abc"
    node_ip = ip_of([a["address"] for a in node(lab, "n2")["status"]["addresses"] if a["type"] == "InternalIP"], "IPv6")
    answer = json.loads(in_netns(f"pn-{lab}.internet", "curl", "-s", "-m", "5", f"http://[{node_ip}]:30080/get").stdout)
    assert answer["pod"] in "abc"


def test_dns_answers_aaaa_for_the_service_and_a_ptr_for_a_pods_ipv6_address(lab: str) -> None:
    v6 = ip_of(cluster_ips(lab), "IPv6")
    aaaa = in_netns(f"pn-{lab}.default.a", "dig", "+short", "AAAA", "web.default.svc.cluster.local").stdout.split()
    assert aaaa == [v6]
    b6 = ip_of([e["ip"] for e in pod(lab, "b")["status"]["podIPs"]], "IPv6")
    ptr = in_netns(f"pn-{lab}.default.a", "dig", "+short", "-x", b6).stdout.split()
    assert ptr == [f"{b6.replace(':', '-')}.web.default.svc.cluster.local."]
