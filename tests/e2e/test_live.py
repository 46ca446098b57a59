"""A running cluster changed as with kubectl: apply, scale, label, delete, and
what each does to real traffic through the Service."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.kernel import netns
from tests.helpers import PODNET, agent_pid, in_netns, kill_agent, podnet, within

LAB = "test_live"
CLUSTER = f"""apiVersion: podnet.dev/v1alpha1
kind: Cluster
metadata: {{name: {LAB}}}
nodes: [{{name: n1}}, {{name: n2}}]
workloads:
  - {{apiVersion: v1, kind: Pod, metadata: {{name: client}}, spec: {{nodeName: n1}}}}
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


def is_ready(obj: dict) -> bool:  # type: ignore[type-arg]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in obj["status"]["conditions"])


def ready_pods(namespace: str) -> set[str]:
    return {p["metadata"]["name"] for p in get("pods", "-n", namespace)["items"]
            if is_ready(p) and "deletionTimestamp" not in p["metadata"]}


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
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: ok, namespace: shop}\nspec: {}\n---\n"
                   "apiVersion: v1\nkind: Service\nmetadata: {name: broken, namespace: shop}\n"
                   "spec: {ports: [{port: 99999}]}\n")
    out = podnet("apply", "-f", str(bad), "--lab", LAB, check=False)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert f"{bad}: document 2: Service spec.ports[0].port: 99999 is out of range" in out.stderr and "Traceback" not in out.stderr
    assert "ok" not in {p["metadata"]["name"] for p in get("pods", "-n", "shop")["items"]}
    missing = podnet("apply", "-f", str(bad).replace("bad", "nowhere"), "--lab", LAB, check=False)
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_expose_run_describe_and_a_rollout_restart(lab: Path) -> None:
    podnet("expose", "deployment/cart", "--port", "8080", "--target-port", "80", "--name", "cart-alt",
           "-n", "shop", "--lab", LAB)
    assert within(3, lambda: answers("http://cart-alt.shop:8080/", 4) == {"cart-1"})
    again = podnet("expose", "deployment/cart", "--port", "8080", "--name", "cart-alt", "-n", "shop", "--lab", LAB,
                   check=False)
    assert again.returncode == 1 and 'services "cart-alt" already exists' in again.stderr
    assert podnet("run", "probe", "-n", "shop", "--lab", LAB).stdout == "pod/probe created\n"
    assert within(10, lambda: "probe" in ready_pods("shop"))
    described = podnet("describe", "pod", "probe", "-n", "shop", "--lab", LAB).stdout
    assert "Labels:                 run=probe" in described and "Status:                 Running" in described
    assert "Successfully assigned shop/probe to n" in described and "Started container probe" in described
    service = podnet("describe", "svc", "cart-alt", "-n", "shop", "--lab", LAB).stdout
    cart_ip = get("pods", "cart-1", "-n", "shop")["status"]["podIP"]
    assert f"Endpoints:              {cart_ip}:80" in service
    before = get("pods", "cart-1", "-n", "shop")["metadata"]["labels"]["pod-template-hash"]
    assert podnet("rollout", "restart", "deployment/cart", "-n", "shop", "--lab", LAB).stdout == \
        "deployment.apps/cart restarted\n"
    status = podnet("rollout", "status", "deployment/cart", "-n", "shop", "--timeout", "20", "--lab", LAB).stdout
    assert status.endswith('deployment "cart" successfully rolled out\n')
    cart = [p for p in get("pods", "-n", "shop")["items"] if p["metadata"]["labels"].get("app") == "cart"
            and "deletionTimestamp" not in p["metadata"]]
    hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in cart}
    assert len(cart) == 1 and hashes != {before}
    assert within(3, lambda: len(answers("http://cart-alt.shop:8080/", 4)) == 1)


FIRST_VERSIONS = (["0/1", "Pending"], ["0/1", "ContainerCreating"])  # a new pod's STATUS, as kubectl's


def test_get_watch_prints_rows_as_they_change(lab: Path) -> None:
    watcher = subprocess.Popen([*PODNET, "get", "pods", "-n", "shop", "-w", "--lab", LAB], stdout=subprocess.PIPE,
                               text=True)
    lines: list[list[str]] = []
    threading.Thread(target=lambda: [lines.append(line.split()) for line in watcher.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        assert within(10, lambda: bool(lines))
        assert lines[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]  # as kubectl's, no NAMESPACE under -n
        podnet("scale", "deployment/cart", "--replicas", "2", "-n", "shop", "--lab", LAB)

        def new_pod_versions() -> list[list[str]]:
            """The rows of the pod the scale made, from its first (not yet running)
            on; its name may be one a pod that just left had (the lowest free ordinal)."""
            rows = [row for row in lines[1:] if len(row) > 3]
            start = next((i for i, row in enumerate(rows) if row[1:3] in FIRST_VERSIONS), None)
            return [] if start is None else [row[1:3] for row in rows[start:] if row[0] == rows[start][0]]

        assert within(15, lambda: ["1/1", "Running"] in new_pod_versions()), lines
        assert new_pod_versions()[0] in FIRST_VERSIONS  # every version printed, from the first
    finally:
        watcher.terminate()
        watcher.wait(5)


def test_endpointslices_follow_readiness_probes(lab: Path) -> None:
    flag = lab / "ready-flag"
    manifest = lab / "gated.yaml"
    manifest.write_text(f"""apiVersion: v1
kind: Pod
metadata: {{name: gated, namespace: shop, labels: {{app: gated}}}}
spec:
  containers:
  - name: echo
    readinessProbe:
      exec: {{command: [test, -e, "{flag}"]}}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {{name: gated, namespace: shop}}
spec: {{selector: {{app: gated}}, ports: [{{port: 80}}]}}
""")
    podnet("apply", "-f", str(manifest), "--lab", LAB)

    def gated_endpoints() -> list[tuple[str, bool]]:
        return [(e["targetRef"]["name"], e["conditions"]["ready"]) for s in get("endpointslices", "-n", "shop")["items"]
                if s["metadata"]["labels"]["kubernetes.io/service-name"] == "gated" for e in s["endpoints"]]

    assert within(10, lambda: gated_endpoints() == [("gated", False)])  # running, but its probe fails
    flag.touch()
    assert within(5, lambda: gated_endpoints() == [("gated", True)])
    assert within(3, lambda: answers("http://gated.shop/", 2) == {"gated"})
    flag.unlink()
    assert within(5, lambda: gated_endpoints() == [("gated", False)])
    table = podnet("get", "endpointslices", "-n", "shop", "--lab", LAB).stdout
    assert "gated-" in table and "IPv4" in table


def test_a_killed_agent_makes_its_node_not_ready_until_its_restart_and_it_catches_up(lab: Path) -> None:
    pinned = lab / "pinned.yaml"
    pinned.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: pinned, namespace: shop}\nspec: {nodeName: n2}\n")
    podnet("apply", "-f", str(pinned), "--lab", LAB)
    assert within(10, lambda: "pinned" in ready_pods("shop"))
    on_n2 = {p["metadata"]["name"] for p in get("pods", "-n", "shop")["items"] if p["spec"].get("nodeName") == "n2"}
    before = ready_pods("shop") & on_n2
    resume = kill_agent(LAB, "n2")
    try:
        assert within(10, lambda: node_status("n2") == "NotReady")
        assert not ready_pods("shop") & on_n2  # their endpoints left the services
        joined = podnet("lab", "node", "add", LAB, "n3").stdout
        subnet = joined.split("pods in ")[1].split()[0]
    finally:
        resume()
    assert within(10, lambda: node_status("n2") == "Ready")
    assert within(5, lambda: subnet in in_netns(f"pn-{LAB}.n2", "ip", "route").stdout)  # it caught up with n3
    assert within(10, lambda: before <= ready_pods("shop"))  # the restarted agent reported them Ready again
    nodes = podnet("get", "nodes", "--lab", LAB).stdout
    assert re.search(r"^n2\s+Ready\s", nodes, re.M), nodes
    assert get("nodes", "n2")["metadata"]["annotations"]["podnet.dev/agent-restarts"] == "1"  # one agent restart
    podnet("lab", "node", "remove", LAB, "n3")


def node_status(name: str) -> str:
    node = get("nodes", name)
    return "Ready" if is_ready(node) else "NotReady"


def test_deleting_the_namespace_takes_everything(lab: Path) -> None:
    podnet("delete", "namespace", "shop", "--lab", LAB)
    assert within(15, lambda: "shop" not in {n["metadata"]["name"] for n in get("namespaces")["items"]})
    assert not [n for n in netns.list_namespaces(f"pn-{LAB}.shop.")]
    assert get("services", "-n", "shop")["items"] == []


def deployment(name: str, replicas: int, **spec: object) -> str:
    return json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "echo"}], **spec}}}})


def service(name: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                       "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}})


def apply_text(lab: Path, name: str, *documents: str) -> None:
    path = lab / f"{name}.yaml"
    path.write_text("\n---\n".join(documents))
    podnet("apply", "-f", str(path), "--lab", LAB)


def app_pods(app: str) -> list[dict]:  # type: ignore[type-arg]
    return [p for p in get("pods")["items"] if p["metadata"].get("labels", {}).get("app") == app]


def ready_count(app: str) -> int:
    return sum(1 for p in app_pods(app) if is_ready(p) and "deletionTimestamp" not in p["metadata"])


def pods_and_log(app: str, node: str) -> str:
    """What a failed wait for an app's pods shows: each pod's state, and the node agent's last words."""
    pods = [f'{p["metadata"]["name"]} {p["status"]["phase"]} {p["status"].get("reason", "")} '
            f'ip={p["status"].get("podIP")} ready={is_ready(p)} deleting={"deletionTimestamp" in p["metadata"]}'
            for p in app_pods(app)]
    log = Path(f"/run/podnet/labs/{LAB}/logs/agent-{node}.log").read_text(errors="replace").splitlines()[-30:]
    return "\n".join(["pods:", *pods, f"agent-{node}.log:", *log])


def test_twenty_concurrent_applies_and_scales_of_one_deployment_lose_nothing(lab: Path) -> None:
    apply_text(lab, "busy", deployment("busy", 1))
    labels = [subprocess.Popen([*PODNET, "label", "deployment", "busy", f"k{i}=v{i}", "--lab", LAB],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(10)]
    scales = [subprocess.Popen([*PODNET, "scale", "deployment/busy", "--replicas", str(i % 4 + 1), "--lab", LAB],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(10)]
    for proc in labels + scales:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    busy = get("deployments", "busy")
    assert {f"k{i}": f"v{i}" for i in range(10)}.items() <= busy["metadata"]["labels"].items()  # every label kept
    replicas = busy["spec"]["replicas"]
    assert replicas in (1, 2, 3, 4)
    assert within(20, lambda: ready_count("busy") == replicas == len(app_pods("busy")))


def test_the_controller_killed_mid_scale_converges_after_its_restart(lab: Path) -> None:
    podnet("scale", "deployment/busy", "--replicas", "8", "--lab", LAB)
    controller = subprocess.run(["pgrep", "-f", f"^\\S+ -m podnet controller --store /run/podnet/labs/{LAB}/"],
                                capture_output=True, text=True).stdout.split()
    assert len(controller) == 1, controller
    os.kill(int(controller[0]), signal.SIGKILL)
    assert within(30, lambda: ready_count("busy") == 8 == len(app_pods("busy")))
    podnet("delete", "deployment", "busy", "--lab", LAB)


def test_an_agent_killed_while_it_creates_twenty_pods_leaks_nothing(lab: Path) -> None:
    apply_text(lab, "many", deployment("many", 20, nodeSelector={"kubernetes.io/hostname": "n1"}))
    assert within(20, lambda: any(p["status"].get("podIP") for p in app_pods("many")))
    pid = agent_pid(LAB, "n1")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # mid-way: some pods have addresses, some sandboxes are half made
    assert within(60, lambda: ready_count("many") == 20), pods_and_log("many", "n1")
    on_n1 = {p["metadata"]["name"]: p["status"]["podIP"] for p in get("pods", "-A")["items"]
             if p["spec"].get("nodeName") == "n1"}
    node = f"pn-{LAB}.n1"
    sandboxes = [n for n in netns.list_namespaces(f"pn-{LAB}.") if n.count(".") == 2]
    assert len([n for n in sandboxes if ".many-" in n]) == 20
    veths = in_netns(node, "ip", "-o", "link", "show", "master", "cni0").stdout.splitlines()
    assert len(veths) == len(on_n1), veths
    ipam = Path(f"/run/podnet/labs/{LAB}/cni/n1/ipam")
    leased = {f.name for f in ipam.rglob("*") if f.is_file() and f.name[0].isdigit()}
    assert leased == set(on_n1.values())
    podnet("delete", "deployment", "many", "--lab", LAB)
    assert within(30, lambda: not app_pods("many")), pods_and_log("many", "n1") + "\nleft in their sandboxes:\n" + \
        "\n".join(f"{n}: {netns.processes_in([n])}" for n in netns.list_namespaces(f"pn-{LAB}.default.many-"))
    assert {f.name for f in ipam.rglob("*") if f.is_file() and f.name[0].isdigit()} == \
        {ip for name, ip in on_n1.items() if not name.startswith("many-")}


def test_scaling_six_to_two_to_eight_fails_no_request(lab: Path) -> None:
    apply_text(lab, "steady", deployment("steady", 6), service("steady"))
    assert within(20, lambda: ready_count("steady") == 6)
    address = get("services", "steady")["spec"]["clusterIP"]
    results: list[bool] = []
    done = threading.Event()

    def client() -> None:
        while not done.is_set():
            proc = in_netns(f"pn-{LAB}.default.client", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            "--max-time", "2", f"http://{address}/", check=False)
            results.append(proc.stdout == "200")

    thread = threading.Thread(target=client)
    thread.start()
    try:
        podnet("scale", "deployment/steady", "--replicas", "2", "--lab", LAB)
        assert within(20, lambda: len(app_pods("steady")) == 2)  # the other four drained and gone
        podnet("scale", "deployment/steady", "--replicas", "8", "--lab", LAB)
        assert within(20, lambda: ready_count("steady") == 8)
        time.sleep(1)
    finally:
        done.set()
        thread.join()
    assert len(results) > 30 and all(results), f"{results.count(False)} of {len(results)} requests failed"
    podnet("delete", "deployment", "steady", "--lab", LAB)


HOLD = """
import socket, sys, time
sock = socket.create_connection((sys.argv[1], 80), timeout=2)
start = None
while True:
    try:
        sock.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        if not sock.recv(65536):
            break
    except OSError:
        break
    start = start or time.monotonic()
    print(f"{time.monotonic() - start:.2f}", flush=True)
    time.sleep(0.2)
"""


def test_a_held_connection_to_a_deleted_pod_lasts_until_its_grace_runs_out(lab: Path) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "holder", "labels": {"app": "holder"}},
           "spec": {"terminationGracePeriodSeconds": 4, "containers": [{"name": "echo"}]}}
    apply_text(lab, "holder", json.dumps(pod), service("holder"))
    assert within(10, lambda: ready_count("holder") == 1)
    address = get("services", "holder")["spec"]["clusterIP"]
    assert within(3, lambda: answers(f"http://{address}/", 1) == {"holder"})
    holder = subprocess.Popen(["ip", "netns", "exec", f"pn-{LAB}.default.client", sys.executable, "-c", HOLD, address],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline()  # connected, and answered once
    deleted = time.monotonic()
    podnet("delete", "pod", "holder", "--lab", LAB)
    lines = holder.stdout.read().split()  # until the connection ends
    lasted = time.monotonic() - deleted
    holder.wait(5)
    assert 3.5 < lasted < 8, lasted  # answered through the 4 s grace, then cut by SIGKILL
    assert float(lines[-1]) > 3.0, lines
    assert answers(f"http://{address}/", 1) == set()  # no new connection got there meanwhile


@pytest.mark.slow
def test_a_command_that_exits_is_restarted_with_back_off(lab: Path) -> None:
    """kubelet's CrashLoopBackOff: not ready while it waits 10 s, then started again."""
    sandbox = f"pn-{LAB}.default.client"
    netns.kill_processes_in([sandbox])

    def client() -> dict:  # type: ignore[type-arg]
        return get("pods", "client")

    def waiting() -> str | None:
        return (client()["status"]["containerStatuses"][0]["state"].get("waiting") or {}).get("reason")

    assert within(5, lambda: waiting() == "CrashLoopBackOff")
    last = client()["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert isinstance(last["exitCode"], int) and last["finishedAt"]  # how it ended is kept
    assert within(15, lambda: client()["status"]["containerStatuses"][0]["restartCount"] == 1
                  and is_ready(client()))
    assert in_netns(sandbox, "curl", "-s", "--max-time", "2", "127.0.0.1/get").returncode == 0
