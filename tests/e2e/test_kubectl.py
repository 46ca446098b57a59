"""The real kubectl and the official Python client drive a podnet cluster through
its Kubernetes API (podnet apiserver), with the kubeconfig `lab up` writes: what
they list reads as on Kubernetes, what they change the network follows, and no
one gets in without the cluster's certificate."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import curl_json, podnet, renamed_example, within

LAB = "test_kubectl"
SHOP = """apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec: {containers: [{name: echo, image: podnet/echo:1, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {selector: {app: cart}, ports: [{port: 80}]}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("kubectl")
    podnet("lab", "up", str(renamed_example("cluster.yaml", LAB, directory)), timeout=120)
    (directory / "kubeconfig").write_text(podnet("lab", "kubeconfig", LAB).stdout)
    (directory / "view").write_text(podnet("lab", "kubeconfig", LAB, "--user", "view").stdout)
    yield directory
    podnet("lab", "down", LAB)


@pytest.fixture(scope="session")
def modern_kubectl() -> None:
    """The kubectl on PATH is one with strict validation and server-side apply's
    flags (1.27 or later), as the dispatcher here is; ./run installs Debian's 1.20
    on a machine with none, which the 1.20 test covers."""
    done = subprocess.run(["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True)
    minor = json.loads(done.stdout or "{}").get("clientVersion", {}).get("minor", "0").rstrip("+")
    if not minor.isdigit() or int(minor) < 27:
        pytest.skip(f"the kubectl on PATH is 1.{minor}; these need 1.27 or later")


def kubectl(lab: Path, *args: str, check: bool = True, user: str = "kubeconfig",
            stdin: str | None = None, binary: str = "kubectl") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(lab / user), "HOME": str(lab / binary.replace("/", "_"))}  # own cache
    done = subprocess.run([binary, *args], capture_output=True, text=True, env=env, timeout=60, input=stdin)
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines()[1:]]


def test_get_nodes_and_pods_read_as_on_kubernetes(lab: Path) -> None:
    nodes = kubectl(lab, "get", "nodes")
    assert nodes.stdout.split("\n")[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert {row[0]: row[1] for row in rows(nodes.stdout)} == {
        "control-plane": "Ready", "worker": "Ready", "worker2": "Ready"}
    pods = kubectl(lab, "get", "pods", "-A", "-o", "wide")
    assert pods.stdout.split("\n")[0].split()[:8] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE",
                                                       "IP", "NODE"]
    client = next(row for row in rows(pods.stdout) if row[1] == "client")
    assert client[2:4] == ["1/1", "Running"] and client[6].startswith("10.244.")
    short = kubectl(lab, "get", "po", "client", "-o", "jsonpath={.status.podIP}")
    assert short.stdout == client[6]


def test_services_and_their_slices(lab: Path) -> None:
    services = {row[1]: row for row in rows(kubectl(lab, "get", "svc", "-A").stdout)}
    assert services["web-service"][2:4] == ["ClusterIP", "10.96.0.2"]
    slices = kubectl(lab, "get", "endpointslices", "-n", "apps").stdout
    assert "web-service-" in slices and "10.244." in slices


def test_apply_scale_and_the_network_follows(lab: Path) -> None:
    path = lab / "shop.yaml"
    path.write_text(SHOP)
    first = kubectl(lab, "apply", "-f", str(path)).stdout.split("\n")
    assert first[:3] == ["namespace/shop created", "deployment.apps/cart created", "service/cart created"]
    again = kubectl(lab, "apply", "-f", str(path)).stdout.split("\n")
    assert again[:3] == ["namespace/shop unchanged", "deployment.apps/cart unchanged", "service/cart unchanged"]
    kubectl(lab, "rollout", "status", "deployment/cart", "-n", "shop", "--timeout=60s")
    assert kubectl(lab, "scale", "deployment/cart", "-n", "shop", "--replicas", "3").stdout.strip() == \
        "deployment.apps/cart scaled"
    kubectl(lab, "rollout", "status", "deployment/cart", "-n", "shop", "--timeout=60s")
    ready = kubectl(lab, "get", "deploy", "cart", "-n", "shop", "-o", "jsonpath={.status.readyReplicas}").stdout
    assert ready == "3"
    client = podnet("exec", "--lab", LAB, "client", "--", "true")  # the lab answers exec as before
    assert client.returncode == 0
    seen: set[str] = set()
    assert within(20, lambda: _answer(seen) and {"cart-0", "cart-1", "cart-2"} <= seen)  # all three answer
    image = kubectl(lab, "get", "pod", "-n", "shop", "-l", "app=cart", "-o",
                    "jsonpath={.items[0].spec.containers[0].image}").stdout
    assert image == "podnet/echo:1"  # kept as applied, through the controller's writes


def _answer(seen: set[str]) -> str:
    try:
        pod = curl_json(f"pn-{LAB}.default.client", "http://cart.shop/get").get("pod", "")
    except (AssertionError, ValueError):
        pod = ""
    seen.add(pod)
    return pod


CREATES = (("namespace", "made"), ("configmap", "settings", "--from-literal=a=b", "--from-literal=n=1"),
           ("secret", "generic", "token", "--from-literal=key=s3cret"), ("serviceaccount", "robot"),
           ("deployment", "made", "--image=podnet/echo:1", "--port=80", "--replicas=2"),
           ("service", "clusterip", "made", "--tcp=80:80"), ("service", "nodeport", "opened", "--tcp=81:80"),
           ("service", "externalname", "away", "--external-name=www.example.org"))


@pytest.mark.parametrize("which", ["on PATH", "1.20"])
def test_kubectls_create_verbs_make_what_they_render(lab: Path, which: str, request: pytest.FixtureRequest) -> None:
    """kubectl's create verbs send protobuf: each object is made as kubectl renders
    it with --dry-run=client (plus what the server defaults), and the network follows."""
    binary = request.getfixturevalue("kubectl_120") if which == "1.20" else "kubectl"
    namespace = "made" if which == "on PATH" else "made-old"
    for verb in CREATES:
        words = [namespace if word == "made" and verb[0] == "namespace" else word for word in verb]
        scoped = [] if verb[0] == "namespace" else ["-n", namespace]
        rendered = json.loads(kubectl(lab, "create", *words, *scoped, "--dry-run=client", "-o", "json",
                                      binary=binary).stdout)
        kubectl(lab, "create", *words, *scoped, binary=binary)
        kind, name = rendered["kind"].lower(), rendered["metadata"]["name"]
        served = json.loads(kubectl(lab, "get", kind, name, *scoped, "-o", "json").stdout)
        for part in ("data", "spec", "type"):
            assert _rendered_within(rendered.get(part), served.get(part)), (verb, part, rendered, served)
        assert rendered["metadata"].get("labels", {}).items() <= served["metadata"].get("labels", {}).items()
    kubectl(lab, "rollout", "status", "deployment/made", "-n", namespace, "--timeout=60s", binary=binary)

    def answered() -> str:
        return str(curl_json(f"pn-{LAB}.default.client", f"http://made.{namespace}/get").get("pod", ""))
    assert within(20, lambda: answered().startswith("made-"))
    for dry in (("create", "configmap", "ghost", "--from-literal=a=b"), ("delete", "deployment", "made"),
                ("scale", "deployment/made", "--replicas=5"), ("delete", "pods", "--all")):
        kubectl(lab, *dry, "-n", namespace, "--dry-run=server", binary=binary)  # 1.20 asks OpenAPI v2 first
    assert kubectl(lab, "get", "cm", "ghost", "-n", namespace, check=False).returncode == 1
    assert kubectl(lab, "get", "deploy", "made", "-n", namespace, "-o", "jsonpath={.spec.replicas}").stdout == "2"
    assert answered().startswith("made-")  # nothing was stopped
    kubectl(lab, "set", "image", "deployment/made", "echo=podnet/echo:2", "-n", namespace, binary=binary)
    kubectl(lab, "rollout", "status", "deployment/made", "-n", namespace, "--timeout=60s", binary=binary)
    (replicaset,) = rows(kubectl(lab, "get", "rs", "-n", namespace, binary=binary).stdout)  # the old one has no pods
    assert replicaset[0].startswith("made-") and replicaset[1:4] == ["2", "2", "2"], replicaset
    described = kubectl(lab, "describe", "deploy", "made", "-n", namespace, binary=binary).stdout
    assert f"NewReplicaSet:   {replicaset[0]} (2/2 replicas created)" in described, described
    kubectl(lab, "delete", "namespace", namespace, binary=binary)


def _rendered_within(rendered: object, served: object) -> bool:
    """Everything kubectl rendered is in what the server holds; null and {} are what
    Go's JSON writes for an unset struct, and say nothing."""
    if rendered is None or rendered == {}:
        return True
    if isinstance(rendered, dict):
        return isinstance(served, dict) and all(_rendered_within(v, served.get(k)) for k, v in rendered.items())
    if isinstance(rendered, list):
        return isinstance(served, list) and len(rendered) == len(served) and \
            all(_rendered_within(r, s) for r, s in zip(rendered, served))
    return rendered == served


def test_errors_read_as_kubectl_prints_them(lab: Path) -> None:
    missing = kubectl(lab, "get", "pod", "nope", check=False)
    assert (missing.returncode, missing.stderr.strip()) == (1, 'Error from server (NotFound): pods "nope" not found')
    denied = kubectl(lab, "delete", "pod", "client", user="view", check=False)
    assert denied.returncode == 1
    assert 'pods "client" is forbidden: User "podnet-viewer" cannot delete resource "pods"' in denied.stderr \
        or 'is forbidden: User "podnet-viewer" cannot delete resource "pods"' in denied.stderr
    assert kubectl(lab, "get", "pods", user="view").returncode == 0  # viewers read


def test_auth_can_i_and_whoami_answer_by_certificate(lab: Path, modern_kubectl: None) -> None:
    assert kubectl(lab, "auth", "can-i", "delete", "pods").stdout.strip() == "yes"
    refused = kubectl(lab, "auth", "can-i", "delete", "pods", user="view", check=False)
    assert (refused.returncode, refused.stdout.strip()) == (1, "no - podnet:view may only get, list and watch")
    assert kubectl(lab, "auth", "can-i", "watch", "services", "-n", "apps", user="view").stdout.strip() == "yes"
    who = rows(kubectl(lab, "auth", "whoami", user="view").stdout)
    assert who == [["Username", "podnet-viewer"], ["Groups", "[podnet:view", "system:authenticated]"]]
    rules = rows(kubectl(lab, "auth", "can-i", "--list", user="view").stdout)
    assert ["*.*", "[]", "[]", "[get", "list", "watch]"] in rules


def test_no_one_gets_in_without_the_clusters_certificate(lab: Path) -> None:
    config = podnet("lab", "kubeconfig", LAB).stdout
    server = next(line.split("server: ")[1] for line in config.splitlines() if "server: " in line)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{server}/api/v1/pods", context=context, timeout=10)
    assert refused.value.code == 401
    status = json.loads(refused.value.read())
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Unauthorized", 401)


def test_the_python_client_lists_watches_and_scales(lab: Path) -> None:
    from kubernetes import client, config, watch

    api_client = config.new_client_from_config(config_file=str(lab / "kubeconfig"))
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    pods = core.list_namespaced_pod("default")
    assert [p.metadata.name for p in pods.items] == ["client"] and pods.items[0].status.pod_ip
    events = watch.Watch().stream(core.list_namespaced_pod, "apps", timeout_seconds=5)
    first = next(events)
    assert first["type"] == "ADDED" and first["object"].metadata.namespace == "apps"
    apps.patch_namespaced_deployment_scale("web", "apps", {"spec": {"replicas": 2}})
    assert within(20, lambda: apps.read_namespaced_deployment("web", "apps").status.ready_replicas == 2)


def test_views_made_from_other_objects_are_watched_too(lab: Path) -> None:
    """ReplicaSets and Endpoints are made from Deployments, pods and slices; a
    watch of them sees a scale as it lands."""
    env = {**os.environ, "KUBECONFIG": str(lab / "kubeconfig"), "HOME": str(lab / "kubectl")}
    watches = {
        "rs": subprocess.Popen(["kubectl", "get", "rs", "-n", "apps", "-w", "--no-headers"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
        "ep": subprocess.Popen(["kubectl", "get", "endpoints", "web-service", "-n", "apps", "-w", "--no-headers"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)}
    seen: dict[str, list[str]] = {name: [] for name in watches}

    def read(name: str) -> None:
        for line in watches[name].stdout:  # type: ignore[union-attr]
            seen[name].append(line.split())

    readers = [threading.Thread(target=read, args=(name,), daemon=True) for name in watches]
    for reader in readers:
        reader.start()
    try:
        time.sleep(1.0)  # both watching
        kubectl(lab, "scale", "deployment/web", "-n", "apps", "--replicas", "3")
        assert within(30, lambda: any(row[1:4] == ["3", "3", "3"] for row in seen["rs"])), seen["rs"]
        assert within(30, lambda: any(row[1].count(":80") == 3 for row in seen["ep"])), seen["ep"]
    finally:
        for proc in watches.values():
            proc.terminate()
            proc.wait(timeout=10)


def test_drain_empties_a_node_and_cordon_keeps_new_pods_off_it(lab: Path) -> None:
    """kubectl drain deletes with protobuf DeleteOptions; the Deployment's new pods
    go to the other nodes, and none to the cordoned one until uncordon."""
    def web_nodes() -> list[str]:
        pods = json.loads(kubectl(lab, "get", "pods", "-n", "apps", "-l", "app=web", "-o", "json").stdout)["items"]
        return [p["spec"].get("nodeName", "") for p in pods if "deletionTimestamp" not in p["metadata"]]

    try:
        drained = kubectl(lab, "drain", "worker2", "--ignore-daemonsets", "--pod-selector=app=web",
                          "--grace-period=1", "--timeout=60s")
        assert "node/worker2 drained" in drained.stdout, drained.stdout
        assert "SchedulingDisabled" in kubectl(lab, "get", "node", "worker2").stdout
        kubectl(lab, "scale", "deployment/web", "-n", "apps", "--replicas", "4")
        assert within(30, lambda: len(web_nodes()) == 4 and "worker2" not in web_nodes()), web_nodes()
    finally:
        kubectl(lab, "uncordon", "worker2")


WEB = """apiVersion: apps/v1
kind: Deployment
metadata: {name: site, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: site}}
  template:
    metadata: {labels: {app: site}}
    spec:
      containers:
      - name: echo
        image: IMAGE
        ports: [{containerPort: 80, name: http}, {containerPort: PORT, name: alt}]
"""


def test_apply_merges_a_change_strategically_and_strict_validation_names_the_field(
        lab: Path, modern_kubectl: None) -> None:
    path = lab / "site.yaml"
    path.write_text(WEB.replace("IMAGE", "podnet/echo:1").replace("PORT", "443"))
    assert kubectl(lab, "apply", "-f", str(path)).stdout.strip() == "deployment.apps/site created"
    path.write_text(WEB.replace("IMAGE", "podnet/echo:2").replace("PORT", "8443"))
    assert kubectl(lab, "apply", "-f", str(path)).stdout.strip() == "deployment.apps/site configured"
    container = json.loads(kubectl(lab, "get", "deploy", "site", "-o", "json").stdout)["spec"]["template"]["spec"][
        "containers"][0]
    assert container["image"] == "podnet/echo:2"
    assert [p["containerPort"] for p in container["ports"]] == [80, 8443]
    (lab / "bad.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\n"
                                  "spec: {contianers: [{name: x}]}\n")
    bad = kubectl(lab, "apply", "-f", str(lab / "bad.yaml"), check=False)
    assert bad.returncode == 1 and 'strict decoding error: unknown field "spec.contianers"' in bad.stderr
    warned = kubectl(lab, "apply", "--validate=warn", "-f", str(lab / "bad.yaml"), check=False)
    assert 'Warning: unknown field "spec.contianers"' in warned.stderr


def test_server_side_apply_owns_fields_and_refuses_a_conflict(
        lab: Path, modern_kubectl: None) -> None:
    path = lab / "owned.yaml"
    path.write_text(WEB.replace("site", "owned").replace("IMAGE", "podnet/echo:1").replace("PORT", "8080"))
    applied = kubectl(lab, "apply", "--server-side", "--field-manager", "team", "-f", str(path))
    assert applied.stdout.strip() == "deployment.apps/owned serverside-applied"
    kubectl(lab, "scale", "deployment/owned", "--replicas", "2")
    refused = kubectl(lab, "apply", "--server-side", "--field-manager", "team", "-f", str(path), check=False)
    assert refused.returncode == 1 and "conflict" in refused.stderr and ".spec.replicas" in refused.stderr
    forced = kubectl(lab, "apply", "--server-side", "--field-manager", "team", "--force-conflicts", "-f", str(path))
    assert forced.returncode == 0
    assert kubectl(lab, "get", "deploy", "owned", "-o", "jsonpath={.spec.replicas}").stdout == "1"


def test_patches_of_every_type_labels_and_annotations(lab: Path) -> None:
    kubectl(lab, "patch", "pod", "client", "--type", "merge", "-p", '{"metadata":{"labels":{"merge":"yes"}}}')
    kubectl(lab, "patch", "pod", "client", "--type", "json", "-p",
            '[{"op":"add","path":"/metadata/labels/json","value":"yes"}]')
    kubectl(lab, "patch", "pod", "client", "-p", '{"metadata":{"labels":{"strategic":"yes"}}}')
    kubectl(lab, "label", "pod", "client", "labelled=yes")
    kubectl(lab, "annotate", "pod", "client", "note=hello")
    pod = json.loads(kubectl(lab, "get", "pod", "client", "-o", "json").stdout)["metadata"]
    assert {k: pod["labels"].get(k) for k in ("merge", "json", "strategic", "labelled")} == {
        "merge": "yes", "json": "yes", "strategic": "yes", "labelled": "yes"}
    assert pod["annotations"]["note"] == "hello"


def test_describe_explain_and_delete_as_on_kubernetes(
        lab: Path, modern_kubectl: None) -> None:
    for what in (("pod", "client"), ("svc", "web-service", "-n", "apps"), ("deploy", "web", "-n", "apps"),
                 ("node", "worker")):
        assert kubectl(lab, "describe", *what).stdout.startswith("Name:")
    explained = kubectl(lab, "explain", "pod.spec.containers").stdout
    assert "KIND:" in explained and "FIELD:" in explained and "image" in explained
    kubectl(lab, "expose", "deployment", "web", "-n", "apps", "--port", "8080", "--target-port", "80",
            "--name", "web-alt")
    assert kubectl(lab, "get", "svc", "web-alt", "-n", "apps", "-o", "jsonpath={.spec.ports[0].port}").stdout == "8080"
    deleted = kubectl(lab, "delete", "svc", "web-alt", "-n", "apps")
    assert deleted.stdout.strip() == 'service "web-alt" deleted'
    assert kubectl(lab, "get", "svc", "web-alt", "-n", "apps", check=False).returncode == 1


def test_the_python_client_creates_patches_and_deletes_a_service(lab: Path) -> None:
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(lab / "kubeconfig"))
    core = client.CoreV1Api(api_client)
    service = client.V1Service(metadata=client.V1ObjectMeta(name="made"),
                               spec=client.V1ServiceSpec(selector={"app": "web"},
                                                         ports=[client.V1ServicePort(port=80)]))
    made = core.create_namespaced_service("apps", service)
    assert made.spec.cluster_ip.startswith("10.96.")
    patched = core.patch_namespaced_service("made", "apps", {"metadata": {"labels": {"tier": "front"}}})
    assert patched.metadata.labels == {"tier": "front"}
    core.delete_namespaced_service("made", "apps")
    assert "made" not in [s.metadata.name for s in core.list_namespaced_service("apps").items]


def test_kubectl_120_gets_applies_scales_and_deletes(lab: Path, kubectl_120: str) -> None:
    """Debian's kubectl 1.20 reads the same tables and writes through the same API,
    validating and explaining by OpenAPI v2 in gnostic's protobuf form."""
    nodes = kubectl(lab, "get", "nodes", binary=kubectl_120).stdout
    assert {row[0] for row in rows(nodes)} == {"control-plane", "worker", "worker2"}
    pods = rows(kubectl(lab, "get", "pods", "-A", "-o", "wide", binary=kubectl_120).stdout)
    assert any(row[1] == "client" and row[2] == "1/1" for row in pods)
    path = lab / "old.yaml"
    path.write_text(WEB.replace("site", "old").replace("IMAGE", "podnet/echo:1").replace("PORT", "8081"))
    misspelled = lab / "misspelled.yaml"
    misspelled.write_text(path.read_text().replace("  replicas: 1\n", "  replicas: 1\n  contianers: []\n"))
    refused = kubectl(lab, "apply", "-f", str(misspelled), binary=kubectl_120, check=False)
    assert refused.returncode == 1 and 'unknown field "contianers" in io.k8s.api.apps.v1.DeploymentSpec' in \
        refused.stderr, refused.stderr
    explained = kubectl(lab, "explain", "deployment.spec.replicas", binary=kubectl_120).stdout
    assert "FIELD:    replicas <integer>" in explained, explained
    assert kubectl(lab, "apply", "-f", str(path), binary=kubectl_120).stdout.strip() == \
        "deployment.apps/old created"
    kubectl(lab, "scale", "deployment/old", "--replicas", "2", binary=kubectl_120)
    kubectl(lab, "rollout", "status", "deployment/old", "--timeout=60s", binary=kubectl_120)
    assert kubectl(lab, "delete", "-f", str(path), binary=kubectl_120).stdout.strip() == \
        'deployment.apps "old" deleted'


def test_concurrent_writers_lose_nothing(lab: Path) -> None:
    """Fifty kubectl calls at once, each a read-modify-write of one pod or a
    scale: every one lands (compare-and-swap, retried on conflict)."""
    from concurrent.futures import ThreadPoolExecutor

    calls = [("label", "pod", "client", f"k{i}=v{i}") for i in range(25)] + \
        [("scale", "deployment/web", "-n", "apps", f"--replicas={2 + i % 3}") for i in range(25)]
    with ThreadPoolExecutor(16) as pool:
        done = list(pool.map(lambda args: kubectl(lab, *args, check=False), calls))
    assert [d.returncode for d in done] == [0] * 50, [d.stderr for d in done if d.returncode]
    labels = json.loads(kubectl(lab, "get", "pod", "client", "-o", "json").stdout)["metadata"]["labels"]
    assert {f"k{i}": f"v{i}" for i in range(25)}.items() <= labels.items()


def test_a_killed_api_server_is_back_and_a_watch_across_it_is_not_stalled(lab: Path) -> None:
    """kubectl get -w across the restart either ends (the stream closed with the
    server) or, if it watched again, goes on showing changes: never silently stalled."""

    watch = subprocess.Popen(["kubectl", "get", "pods", "-w"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env={**os.environ, "KUBECONFIG": str(lab / "kubeconfig"),
                                             "HOME": str(lab / "kubectl")})
    seen: list[str] = []
    assert watch.stdout is not None
    threading.Thread(target=lambda: seen.extend(iter(watch.stdout.readline, "")), daemon=True).start()
    try:
        assert within(10, lambda: any(line.startswith("client") for line in seen))
        server = subprocess.run(["pgrep", "-f", rf"^\S+ -m podnet apiserver --store /run/podnet/labs/{LAB}/"],
                                capture_output=True, text=True).stdout.split()
        assert len(server) == 1
        os.kill(int(server[0]), 9)
        assert within(10, lambda: kubectl(lab, "get", "nodes", check=False).returncode == 0)
        kubectl(lab, "label", "pod", "client", "after-restart=yes", "--overwrite")
        assert within(30, lambda: watch.poll() is not None or sum(line.startswith("client") for line in seen) > 1)
    finally:
        watch.kill()
        watch.wait()
