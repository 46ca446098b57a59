"""A running cluster changed as with kubectl: apply, scale, label, delete, and
what each does to real traffic through the Service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.kernel import netns
from tests.helpers import in_netns, podnet, within

LAB = "t-live"
CLUSTER = f"""apiVersion: podnet.dev/v1alpha1
kind: Cluster
metadata: {{name: {LAB}}}
nodes: [{{name: n1}}, {{name: n2}}]
workloads:
  - {{kind: Pod, metadata: {{name: client}}, spec: {{nodeName: n1}}}}
"""
SHOP = """apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: a}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec: {containers: [{name: echo}]}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {selector: {app: cart}, ports: [{port: 80}]}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("live")
    (directory / "lab.yaml").write_text(CLUSTER)
    (directory / "shop.yaml").write_text(SHOP)
    podnet("lab", "up", str(directory / "lab.yaml"))
    try:
        yield directory
    finally:
        podnet("lab", "down", LAB)


def get(kind: str, *args: str) -> dict:  # type: ignore[type-arg]
    return json.loads(podnet("get", kind, "--lab", LAB, "-o", "json", *args).stdout)


def ready_pods(namespace: str) -> set[str]:
    return {p["metadata"]["name"] for p in get("pods", "-n", namespace)["items"]
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
            and "deletionTimestamp" not in p["metadata"]}


def answers(url: str, count: int = 12) -> set[str]:
    found = set()
    for _ in range(count):
        proc = in_netns(f"pn-{LAB}.default.client", "curl", "-s", "--max-time", "2", url, check=False)
        if proc.returncode == 0:
            found.add(json.loads(proc.stdout)["pod"])
    return found


def test_apply_creates_then_reports_unchanged_and_the_service_answers(lab: Path) -> None:
    assert podnet("apply", "-f", str(lab / "shop.yaml"), "--lab", LAB).stdout.split("\n")[:3] == [
        "namespace/shop created", "deployment.apps/cart created", "service/cart created"]
    assert within(10, lambda: ready_pods("shop") == {"cart-0", "cart-1"})
    assert podnet("apply", "-f", str(lab / "shop.yaml"), "--lab", LAB).stdout.split() == [
        "namespace/shop", "unchanged", "deployment.apps/cart", "unchanged", "service/cart", "unchanged"]
    assert within(3, lambda: answers("http://cart.shop.svc.cluster.local/") == {"cart-0", "cart-1"})


def test_scale_up_and_down_and_the_endpoints_follow(lab: Path) -> None:
    podnet("scale", "deployment/cart", "--replicas", "4", "-n", "shop", "--lab", LAB)
    assert within(10, lambda: ready_pods("shop") == {"cart-0", "cart-1", "cart-2", "cart-3"})
    assert within(3, lambda: answers("http://cart.shop/", 30) == {"cart-0", "cart-1", "cart-2", "cart-3"})
    podnet("scale", "deploy", "cart", "--replicas", "1", "-n", "shop", "--lab", LAB)
    assert within(10, lambda: ready_pods("shop") == {"cart-0"})
    assert within(3, lambda: answers("http://cart.shop/") == {"cart-0"})
    assert within(10, lambda: not netns.exists(f"pn-{LAB}.shop.cart-3"))  # the sandbox goes with the pod


def test_a_relabelled_pod_leaves_the_service_and_is_replaced(lab: Path) -> None:
    out = podnet("label", "pod", "cart-0", "app=moved", "-n", "shop", "--lab", LAB, check=False)
    assert out.returncode == 1 and "--overwrite" in out.stderr
    podnet("label", "pod", "cart-0", "app=moved", "--overwrite", "-n", "shop", "--lab", LAB)
    assert within(10, lambda: ready_pods("shop") == {"cart-0", "cart-1"})
    assert within(3, lambda: answers("http://cart.shop/") == {"cart-1"})
    podnet("delete", "pod", "cart-0", "-n", "shop", "--lab", LAB)
    assert within(10, lambda: ready_pods("shop") == {"cart-1"})


def test_a_bad_manifest_applies_nothing_and_says_where(lab: Path) -> None:
    bad = lab / "bad.yaml"
    bad.write_text("kind: Pod\nmetadata: {name: ok, namespace: shop}\nspec: {}\n---\n"
                   "kind: Service\nmetadata: {name: broken, namespace: shop}\nspec: {ports: [{port: 99999}]}\n")
    out = podnet("apply", "-f", str(bad), "--lab", LAB, check=False)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert f"{bad}: document 2: Service spec.ports[0].port: 99999 is out of range" in out.stderr and "Traceback" not in out.stderr
    assert "ok" not in {p["metadata"]["name"] for p in get("pods", "-n", "shop")["items"]}
    missing = podnet("apply", "-f", str(bad).replace("bad", "nowhere"), "--lab", LAB, check=False)
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_deleting_the_namespace_takes_everything(lab: Path) -> None:
    podnet("delete", "namespace", "shop", "--lab", LAB)
    assert within(15, lambda: "shop" not in {n["metadata"]["name"] for n in get("namespaces")["items"]})
    assert not [n for n in netns.list_namespaces(f"pn-{LAB}.shop.")]
    assert get("services", "-n", "shop")["items"] == []


@pytest.mark.slow
def test_a_command_that_exits_is_restarted_with_back_off(lab: Path) -> None:
    """kubelet's CrashLoopBackOff: not ready while it waits 10 s, then started again."""
    sandbox = f"pn-{LAB}.default.client"
    netns.kill_processes_in([sandbox])

    def client() -> dict:  # type: ignore[type-arg]
        return get("pods", "client")

    assert within(5, lambda: client()["status"].get("reason") == "CrashLoopBackOff")
    assert within(15, lambda: client()["status"]["containerStatuses"][0]["restartCount"] == 1
                  and client()["status"]["conditions"][0]["status"] == "True")
    assert in_netns(sandbox, "curl", "-s", "--max-time", "2", "127.0.0.1/get").returncode == 0
