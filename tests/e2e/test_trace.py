"""`podnet trace`: the computed path and the kernel's own trace of one real packet
agree, on host-gw and on VXLAN: pod to pod on one node and across nodes,
through a ClusterIP, through a NodePort with each external traffic policy, to
the internet, to a service without endpoints, and into a NetworkPolicy drop;
and on a dual-stack VXLAN lab, an IPv6 packet between pods on two nodes (the
kernel's trace read from the ip6 tables) and to the internet's IPv6 address,
each recorded as an IPv6 flow."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import podnet, within

LABS = {"test_trace-hg": "host-gw", "test_trace-vx": "vxlan"}
DUAL = "test_obsdual"
DENY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-from-c, namespace: default}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: [{from: [{podSelector: {matchLabels: {app: c}}}]}]
"""


def _service(name: str, selector: str, node_port: int | None = None, local: bool = False) -> dict:  # type: ignore[type-arg]
    spec: dict[str, object] = {"selector": {"role": selector}, "ports": [{"port": 80, "targetPort": 80}]}
    if node_port:
        spec["type"] = "NodePort"
        spec["ports"] = [{"port": 80, "targetPort": 80, "nodePort": node_port}]
        if local:
            spec["externalTrafficPolicy"] = "Local"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


@pytest.fixture(scope="module", params=list(LABS))
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = request.param
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "labels": {"app": pod, "role": "web"}},
             "spec": {"nodeName": node, "containers": [{"name": "echo", "image": "podnet/echo",
                                                          "ports": [{"containerPort": 80}]}]}}
            for pod, node in (("a", "n1"), ("b", "n2"), ("c", "n1"))]
    services = [_service("web", "web"), _service("empty", "nobody"), _service("web-np", "web", 30080),
                _service("web-local", "web", 30081, local=True)]
    document = {"apiVersion": "podnet.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
                "networking": {"backend": LABS[name]}, "nodes": [{"name": "n1"}, {"name": "n2"}, {"name": "n3"}],
                "workloads": pods + services}
    path = tmp_path_factory.mktemp("trace") / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    podnet("lab", "up", str(path))
    yield name
    podnet("lab", "down", name)


@pytest.fixture(scope="module")
def obsdual(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A dual-stack lab (IPv4 primary) on VXLAN: IPv6 pods tunnelled over the IPv4 underlay."""
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "labels": {"app": pod}},
             "spec": {"nodeName": node, "containers": [{"name": "echo", "image": "podnet/echo",
                                                          "ports": [{"containerPort": 80}]}]}}
            for pod, node in (("a", "n1"), ("b", "n2"))]
    document = {"apiVersion": "podnet.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": DUAL},
                "networking": {"ipFamilies": ["IPv4", "IPv6"], "backend": "vxlan"},
                "nodes": [{"name": "n1"}, {"name": "n2"}], "workloads": pods}
    path = tmp_path_factory.mktemp("obsdual") / f"{DUAL}.yaml"
    path.write_text(yaml.safe_dump(document))
    podnet("lab", "up", str(path))
    yield DUAL
    podnet("lab", "down", DUAL)


def trace(lab: str, *args: str) -> dict:  # type: ignore[type-arg]
    done = podnet("trace", "--lab", lab, "--live", "-o", "json", *args, check=False)
    assert done.returncode in (0, 1), f"the kernel's trace disagrees:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def actions(result: dict, path: int) -> list[str]:  # type: ignore[type-arg]
    return [s["action"] for s in result["steps"] if s["path"] in (0, path)]


def test_pod_to_pod_on_one_node(lab: str) -> None:
    result = trace(lab, "a", "c:80")
    assert result["live"]["agrees"] and result["delivered"]
    assert actions(result, 0) == ["send", "deliver"] and [n["node"] for n in result["live"]["nodes"]] == ["n1"]


def test_pod_to_pod_across_nodes(lab: str) -> None:
    result = trace(lab, "a", "b:80")
    expected = ["send", "route", "tunnel", "deliver"] if LABS[lab] == "vxlan" else ["send", "route", "deliver"]
    assert result["live"]["agrees"] and actions(result, 0) == expected
    assert {n["node"] for n in result["live"]["nodes"]} == {"n1", "n2"}


def test_through_a_cluster_ip(lab: str) -> None:
    result = trace(lab, "a", "svc/web:80")
    assert result["live"]["agrees"] and result["live"]["path"] in (1, 2, 3)
    assert sum(s["action"] == "service" for s in result["steps"]) == 3  # a path per endpoint
    text = podnet("trace", "--lab", lab, "a", "svc/web:80").stdout.splitlines()[0]
    assert text == f"{result['from']} -> {result['to']}:80 (TCP)"  # the JSON's ends are the text's
    assert result["to"] == f"service default/web ({result['address']})"


@pytest.mark.parametrize("node", ["n1", "n3"])
def test_through_a_node_port_with_cluster_policy(lab: str, node: str) -> None:
    result = trace(lab, "internet", f"node/{node}:30080")
    assert result["live"]["agrees"] and result["delivered"]
    path = result["live"]["path"]
    assert "masquerade" in actions(result, path)  # Cluster: the node hides the client


def test_through_a_node_port_with_local_policy(lab: str) -> None:
    kept = trace(lab, "internet", "node/n2:30081")  # b is on n2: delivered, the client's address kept
    assert kept["live"]["agrees"] and kept["delivered"] and "masquerade" not in actions(kept, 0)
    dropped = trace(lab, "internet", "node/n3:30081")  # no endpoint on n3
    assert dropped["live"]["agrees"] and not dropped["delivered"]


def test_to_the_internet(lab: str) -> None:
    result = trace(lab, "a", "internet:80")
    assert result["live"]["agrees"] and actions(result, 0) == ["send", "route", "masquerade", "leave"]


def test_to_a_service_without_endpoints(lab: str) -> None:
    result = trace(lab, "a", "svc/empty:80")
    assert result["live"]["agrees"] and actions(result, 0)[-1] == "reject"
    assert result["live"]["sent"].endswith("refused")


def test_dropped_by_policy(lab: str, tmp_path: Path) -> None:
    (tmp_path / "deny.yaml").write_text(DENY)
    podnet("apply", "--lab", lab, "-f", str(tmp_path / "deny.yaml"))
    try:
        within(5, lambda: podnet("trace", "--lab", lab, "--live", "a", "b:80", check=False).returncode == 1)
        result = trace(lab, "a", "b:80")
        policy = next(s for s in result["steps"] if s["action"] == "policy")
        assert "default/only-from-c" in policy["text"] and result["steps"][-1]["action"] == "drop"
        assert result["live"]["agrees"] and result["live"]["nodes"][-1]["verdict"] == "drop"
        assert trace(lab, "c", "b:80")["live"]["agrees"]
    finally:
        podnet("delete", "--lab", lab, "networkpolicy", "only-from-c")


def _ipv6_of(lab: str, pod: str) -> str:
    status = json.loads(podnet("get", "pod", pod, "--lab", lab, "-o", "json").stdout)["status"]
    (address,) = [a["ip"] for a in status["podIPs"] if ":" in a["ip"]]
    return address


def _flows(lab: str, *filters: str) -> list[dict]:  # type: ignore[type-arg]
    done = podnet("observe", "--lab", lab, "-o", "json", *filters)
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_an_ipv6_packet_between_pods_is_traced_live_and_recorded_as_a_flow(obsdual: str) -> None:
    a6, b6 = _ipv6_of(obsdual, "a"), _ipv6_of(obsdual, "b")
    result = trace(obsdual, "-6", "a", "b:80")
    assert result["address"] == b6 and result["delivered"] and result["live"]["agrees"], result["live"]
    assert actions(result, 0) == ["send", "route", "tunnel", "deliver"]
    assert f"({a6})" in result["steps"][0]["text"] and "podnet.1 onlink" in result["steps"][1]["decided_by"]
    assert {n["node"]: n["verdict"] for n in result["live"]["nodes"]} == {"n1": "accept", "n2": "accept"}
    marked = [e for n in result["live"]["nodes"] for e in n["events"] if e["table"] == "podnet-trace"]
    assert marked and all(e["family"] == "ip6" for e in marked)  # reported by the ip6 marking table
    assert {e["source"] for e in marked if e["handle"] is not None} == {a6}
    source_port = int(result["live"]["sent"].split("]:")[1].split(" ")[0])

    def recorded() -> list[dict]:  # type: ignore[type-arg]
        return [f for f in _flows(obsdual, "--ip", b6, "--protocol", "tcp")
                if f["source"] == a6 and f["source_port"] == source_port]

    assert within(5, lambda: {f["node"] for f in recorded()} == {"n1", "n2"})  # sent by n1, delivered by n2
    flow = recorded()[0]
    assert (flow["verdict"], flow["source_pod"], flow["destination_pod"], flow["destination_port"]) == \
        ("FORWARDED", "default/a", "default/b", 80)
    assert _flows(obsdual, "--ip", "fd00:10:244::/56", "--from-pod", "a")  # a CIDR of the pods' IPv6 network


def test_ipv6_to_the_internet_is_masqueraded_by_the_ip6_egress_table(obsdual: str) -> None:
    result = trace(obsdual, "-6", "a", "internet:80")
    assert result["address"] == "2001:db8::10" and result["live"]["agrees"], result["live"]
    assert actions(result, 0) == ["send", "route", "masquerade", "leave"]
    masquerade = next(s for s in result["steps"] if s["action"] == "masquerade")
    assert masquerade["decided_by"].startswith("podnet-egress/postrouting: ip6 saddr ")
    (hit,) = [e for n in result["live"]["nodes"] for e in n["events"]
              if e["table"] == "podnet-egress" and e["handle"] is not None]
    assert hit["family"] == "ip6" and hit["rule"].startswith("ip6 saddr fd00:10:244:")  # as nft lists the ip6 table
    assert "masquerade" in hit["rule"]
