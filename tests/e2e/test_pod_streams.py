"""Pods as Kubernetes has them, driven by the real kubectl (the one on PATH, which
speaks WebSocket, and Debian's 1.20, which speaks SPDY/3.1) and the official
Python client: several containers in one network namespace, exec (exit codes,
stdin, a terminal), logs (follow, previous), port-forward, cp, and what each
refuses. Every stream goes kubectl -> the API server -> the node's kubelet
endpoint, over TLS both hops."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.test_kubectl import kubectl
from tests.helpers import EXAMPLES, podnet, within

LAB = "test_streams"
CLUSTER = f"""apiVersion: podnet.dev/v1alpha1
kind: Cluster
metadata: {{name: {LAB}}}
networking: {{podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12}}
nodes: [{{name: control-plane}}, {{name: worker}}]
workloads:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {{name: web}}
    spec:
      replicas: 1
      selector: {{matchLabels: {{app: web}}}}
      template:
        metadata: {{labels: {{app: web}}}}
        spec:
          nodeSelector: {{kubernetes.io/hostname: worker}}
          containers: [{{name: echo, image: podnet/echo, ports: [{{containerPort: 80}}]}}]
  - apiVersion: v1
    kind: Service
    metadata: {{name: web}}
    spec: {{selector: {{app: web}}, ports: [{{port: 8000, targetPort: 80}}]}}
  - apiVersion: v1
    kind: Pod
    metadata: {{name: talker}}
    spec:
      nodeName: worker
      containers:
        - name: talk
          command: [sh, -c, 'i=0; while true; do echo "line $i"; i=$((i+1)); sleep 0.2; done']
        - name: quiet
          command: [sleep, infinity]
          workingDir: /tmp
          env: [{{name: GREETING, value: hello}}]
"""

BINARIES = ["on PATH", "1.20"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("streams")
    (directory / "lab.yaml").write_text(CLUSTER)
    podnet("lab", "up", str(directory / "lab.yaml"), timeout=120)
    (directory / "kubeconfig").write_text(podnet("lab", "kubeconfig", LAB).stdout)
    (directory / "view").write_text(podnet("lab", "kubeconfig", LAB, "--user", "view").stdout)
    kubectl(directory, "apply", "-f", str(EXAMPLES / "workshop-pod.yaml"))
    assert within(30, lambda: pod(directory, "example-pod-1")["status"].get("phase") == "Running" and all(
        c["ready"] for c in pod(directory, "example-pod-1")["status"]["containerStatuses"]))
    yield directory
    podnet("lab", "down", LAB)


@pytest.fixture(params=BINARIES)
def binary(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("kubectl_120") if request.param == "1.20" else "kubectl"


def pod(lab: Path, name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(kubectl(lab, "get", "pod", name, "-o", "json").stdout)


def statuses(lab: Path, name: str) -> dict[str, dict]:  # type: ignore[type-arg]
    return {s["name"]: s for s in pod(lab, name)["status"].get("containerStatuses", [])}


def web_pod(lab: Path) -> str:
    return kubectl(lab, "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}").stdout


def test_the_seeds_two_containers_share_one_network_namespace(lab: Path, binary: str) -> None:
    """The workshop's commands, verbatim: both `ip a` outputs are the same."""
    wide = kubectl(lab, "get", "pod", "example-pod-1", "-o", "wide", binary=binary).stdout
    assert wide.split("\n")[1].split()[1:3] == ["2/2", "Running"]
    ip = pod(lab, "example-pod-1")["status"]["podIP"]
    one = kubectl(lab, "exec", "example-pod-1", "-c", "container-one", "--", "ip", "a", binary=binary).stdout
    two = kubectl(lab, "exec", "example-pod-1", "-c", "container-two", "--", "ip", "a", binary=binary).stdout
    settled = [text.replace(" tentative", "") for text in (one, two)]  # IPv6's DAD may end between the two
    assert settled[0] == settled[1] and f"inet {ip}/" in one
    answer = kubectl(lab, "exec", "example-pod-1", "-c", "container-one", "--",
                     "curl", "-s", "localhost:8081/get", binary=binary).stdout
    assert json.loads(answer)["origin"] == "127.0.0.1"  # container-two answers container-one on localhost


def test_exec_exit_codes_and_stdin(lab: Path, binary: str) -> None:
    done = kubectl(lab, "exec", "talker", "-c", "quiet", "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                   check=False, binary=binary)
    assert (done.returncode, done.stdout, "err" in done.stderr) == (3, "out\n", True)
    assert kubectl(lab, "exec", "-i", "talker", "-c", "quiet", "--", "cat", stdin="hi\nthere\n",
                   binary=binary).stdout == "hi\nthere\n"
    env = kubectl(lab, "exec", "talker", "-c", "quiet", "--", "sh", "-c", 'echo "$GREETING $(pwd)"',
                  binary=binary).stdout
    assert env == "hello /tmp\n"  # the container's env and working directory


def test_exec_with_a_terminal(lab: Path, binary: str) -> None:
    env = {**os.environ, "KUBECONFIG": str(lab / "kubeconfig")}
    command = f"{binary} exec -it talker -c quiet -- sh -c 'test -t 0 && stty size && echo on-a-tty'"
    done = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, env=env,
                          timeout=60, input="")
    assert "on-a-tty" in done.stdout and done.returncode == 0, done.stdout + done.stderr


def test_exec_refusals(lab: Path) -> None:
    missing = kubectl(lab, "exec", "talker", "-c", "nope", "--", "true", check=False)
    assert missing.returncode != 0 and "container nope is not valid for pod talker" in missing.stderr
    assert "talk" in missing.stderr and "quiet" in missing.stderr  # the containers there are
    forbidden = kubectl(lab, "exec", "talker", "-c", "quiet", "--", "true", check=False, user="view")
    assert forbidden.returncode != 0 and "forbidden" in forbidden.stderr.lower()
    kubectl(lab, "run", "done-already", "--restart=Never", "--image=podnet/echo", "--command", "--", "true")
    assert within(20, lambda: pod(lab, "done-already")["status"].get("phase") == "Succeeded")
    completed = kubectl(lab, "exec", "done-already", "--", "true", check=False)
    assert "cannot exec into a container in a completed pod; current phase is Succeeded" in completed.stderr


def test_logs_follow_and_choose_a_container(lab: Path, binary: str) -> None:
    lines = kubectl(lab, "logs", "talker", "-c", "talk", "--tail", "2", binary=binary).stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("line ") for line in lines)
    env = {**os.environ, "KUBECONFIG": str(lab / "kubeconfig"), "HOME": str(lab)}
    follow = subprocess.Popen([binary, "logs", "-f", "--tail", "0", "--timestamps", "talker", "-c", "talk"],
                              stdout=subprocess.PIPE, env=env, text=True)
    try:
        delays = []
        for _ in range(5):  # each line as it is written: its timestamp is when the shim logged it
            stamp, text = follow.stdout.readline().split(" ", 1)  # type: ignore[union-attr]
            written = datetime.fromisoformat(stamp[:26] + "+00:00").timestamp()
            delays.append(time.time() - written)
            assert text.startswith("line ")
        assert max(delays[1:]) < 1.0, delays  # followed, not polled: each new line within a second
    finally:
        follow.kill()
        follow.wait()
    stamped = kubectl(lab, "logs", "talker", "-c", "talk", "--tail", "1", "--timestamps", binary=binary).stdout
    assert stamped.split()[0].endswith("Z") and stamped.split()[1] == "line"
    kubectl(lab, "logs", "deploy/web", binary=binary)  # resolved to its pod and served (it logs nothing: exit 0)


@pytest.mark.slow
def test_logs_of_the_previous_instance_after_a_crash(lab: Path) -> None:
    kubectl(lab, "run", "crasher", "--image=podnet/echo", "--command", "--",  # $$$$: the shell's $$, once the
            "sh", "-c", "echo run $$$$; sleep 0.5; exit 1")                      # kubelet has expanded $$ to $
    assert within(30, lambda: statuses(lab, "crasher").get("crasher", {}).get("restartCount", 0) >= 1
                  and "running" in statuses(lab, "crasher")["crasher"]["state"])
    previous = kubectl(lab, "logs", "crasher", "--previous").stdout
    current = kubectl(lab, "logs", "crasher").stdout
    assert previous.startswith("run ") and current.startswith("run ") and previous != current
    last = statuses(lab, "crasher")["crasher"]["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (1, "Error")
    kubectl(lab, "delete", "pod", "crasher", "--grace-period=0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def forwarding(lab: Path, binary: str, target: str, *ports: str) -> subprocess.Popen[str]:
    env = {**os.environ, "KUBECONFIG": str(lab / "kubeconfig"), "HOME": str(lab)}
    process = subprocess.Popen([binary, "port-forward", target, *ports], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, text=True)
    assert "Forwarding from" in process.stdout.readline()  # type: ignore[union-attr]
    return process


def post(port: int, body: bytes) -> dict:  # type: ignore[type-arg]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/up", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def test_port_forward_carries_requests_both_ways(lab: Path, binary: str) -> None:
    local = free_port()
    process = forwarding(lab, binary, f"pod/{web_pod(lab)}", f"{local}:80")
    try:
        big = b"x" * (10 * 1024 * 1024)
        answer = post(local, big)  # 10 MiB up, and as much back
        assert len(answer["data"]) == len(big) and answer["pod"] == web_pod(lab)
        assert [post(local, b"again")["data"] for _ in range(3)] == ["again"] * 3  # several connections
    finally:
        process.terminate()
        process.wait()


def test_port_forward_to_a_service(lab: Path, binary: str) -> None:
    local = free_port()
    process = forwarding(lab, binary, "svc/web", f"{local}:8000")  # the Service's port, to its pod's targetPort
    try:
        assert post(local, b"through the service")["pod"] == web_pod(lab)
    finally:
        process.terminate()
        process.wait()


def test_port_forward_to_a_closed_port_fails_that_stream_only(lab: Path, kubectl_120: str) -> None:
    """The kubelet writes the error on that connection's error stream and keeps
    the session. (kubectl 1.31 and later end port-forward on any such error
    themselves; 1.20 keeps going, which shows the session is still up.)"""
    open_port, closed_port = free_port(), free_port()
    process = forwarding(lab, kubectl_120, f"pod/{web_pod(lab)}", f"{open_port}:80", f"{closed_port}:81")
    try:
        with pytest.raises(OSError):
            post(closed_port, b"nobody")  # nothing listens on 81 in the pod: this stream fails...
        assert post(open_port, b"still up")["data"] == "still up"  # ...and the session carries on
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait()


def test_cp_both_ways(lab: Path, binary: str, tmp_path: Path) -> None:
    source = tmp_path / "payload.txt"
    source.write_text("copied through exec and tar\n" * 1000)
    inside = f"/tmp/podnet-cp-{os.getpid()}-{binary.count('/')}.txt"
    try:
        kubectl(lab, "cp", str(source), f"talker:{inside}", "-c", "quiet", binary=binary)
        back = tmp_path / "back.txt"
        kubectl(lab, "cp", f"talker:{inside}", str(back), "-c", "quiet", binary=binary)
        assert back.read_text() == source.read_text()
    finally:
        Path(inside).unlink(missing_ok=True)  # a pod shares the machine's files: no image of its own


def test_the_python_client_execs_and_follows_logs(lab: Path) -> None:
    from kubernetes import client, config
    from kubernetes.stream import stream

    api = client.CoreV1Api(config.new_client_from_config(str(lab / "kubeconfig")))
    out = stream(api.connect_get_namespaced_pod_exec, "talker", "default", container="quiet",
                 command=["sh", "-c", "echo from-python"], stderr=True, stdin=False, stdout=True, tty=False)
    assert out == "from-python\n"
    response = api.read_namespaced_pod_log("talker", "default", container="talk", follow=True, tail_lines=1,
                                           _preload_content=False)
    try:
        first = next(response.stream(64))
        assert first.startswith(b"line ")
    finally:
        response.release_conn()


def test_the_kubelet_endpoint_takes_only_the_api_servers_certificate(lab: Path) -> None:
    """Its own CA's admin certificate is not enough: only the API server's client
    certificate may exec there."""
    pki = Path(f"/run/podnet/labs/{LAB}/pki")
    node_ip = json.loads(kubectl(lab, "get", "node", "worker", "-o", "json").stdout)["status"]["addresses"][0]["address"]
    fabric = f"pn-{LAB}"  # the fabric's namespace, where the API server runs
    asked = subprocess.run(["ip", "netns", "exec", fabric, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            "--cacert", str(pki / "ca.crt"), "--cert", str(pki / "admin.crt"), "--key",
                            str(pki / "admin.key"), f"https://{node_ip}:10250/healthz"],
                           capture_output=True, text=True, timeout=30)
    assert asked.stdout in ("000", "401", "403")
    allowed = subprocess.run(["ip", "netns", "exec", fabric, "curl", "-s", "--cacert", str(pki / "ca.crt"),
                              "--cert", str(pki / "apiserver-kubelet-client.crt"),
                              "--key", str(pki / "apiserver-kubelet-client.key"),
                              f"https://{node_ip}:10250/healthz"], capture_output=True, text=True, timeout=30)
    assert allowed.stdout.strip() == "ok"


PER_CONTAINER = """apiVersion: v1
kind: Pod
metadata: {name: steps}
spec:
  nodeName: worker
  restartPolicy: OnFailure
  initContainers:
    - {name: first, command: [sh, -c, 'echo first > /dev/null']}
    - {name: second, command: [sleep, '0.3']}
  containers:
    - name: serves
      args: [--port, '8080']
    - name: never-ready
      command: [sleep, infinity]
      readinessProbe: {exec: {command: ['false']}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: clash}
spec:
  nodeName: worker
  containers:
    - {name: a, args: [--port, '8090']}
    - {name: b, args: [--port, '8090']}
---
apiVersion: v1
kind: Pod
metadata: {name: fails}
spec:
  nodeName: worker
  restartPolicy: Never
  containers:
    - {name: ok, command: ['true']}
    - {name: bad, command: [sh, -c, 'exit 7']}
---
apiVersion: v1
kind: Pod
metadata: {name: retried}
spec:
  nodeName: worker
  restartPolicy: OnFailure
  containers:
    - name: once
      command: [sh, -c, 'test -e /tmp/podnet-$POD_UID && rm /tmp/podnet-$POD_UID && exit 0; touch /tmp/podnet-$POD_UID; exit 1']
      env: [{name: POD_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: listener}
spec:
  nodeName: worker
  containers:
    - {name: cat, command: [cat], stdin: true}
"""


@pytest.fixture(scope="module")
def steps(lab: Path) -> Path:
    kubectl(lab, "apply", "-f", "-", stdin=PER_CONTAINER)
    return lab


def test_init_containers_then_each_container_with_its_own_readiness(steps: Path) -> None:
    assert within(20, lambda: set(statuses(steps, "steps")) == {"serves", "never-ready"}
                  and statuses(steps, "steps")["serves"]["ready"])
    status = pod(steps, "steps")["status"]
    assert [s["state"]["terminated"]["reason"] for s in status["initContainerStatuses"]] == ["Completed"] * 2
    assert status["phase"] == "Running" and not statuses(steps, "steps")["never-ready"]["ready"]
    row = kubectl(steps, "get", "pod", "steps").stdout.splitlines()[1].split()
    assert row[1:3] == ["1/2", "Running"]  # one of two ready: the pod is not
    assert [c["status"] for c in status["conditions"] if c["type"] == "Ready"] == ["False"]


def test_two_containers_on_one_port_the_second_says_so_in_its_log(steps: Path) -> None:
    def losing() -> str:
        for name in ("a", "b"):
            log = kubectl(steps, "logs", "clash", "-c", name, check=False).stdout
            if "Address already in use" in log:
                return name
        return ""

    assert within(20, lambda: losing() != "")
    assert statuses(steps, "clash")["a" if losing() == "b" else "b"]["ready"]


def test_restart_policies_end_in_succeeded_or_failed(steps: Path) -> None:
    assert within(20, lambda: pod(steps, "fails")["status"].get("phase") == "Failed")
    bad = statuses(steps, "fails")["bad"]
    assert (bad["state"]["terminated"]["exitCode"], bad["restartCount"]) == (7, 0)  # Never: not restarted
    assert within(30, lambda: pod(steps, "retried")["status"].get("phase") == "Succeeded")  # OnFailure: once more
    once = statuses(steps, "retried")["once"]
    assert (once["restartCount"], once["lastState"]["terminated"]["exitCode"]) == (1, 1)


def test_attach_to_a_containers_stdin(steps: Path) -> None:
    assert within(20, lambda: statuses(steps, "listener").get("cat", {}).get("ready") is True)
    env = {**os.environ, "KUBECONFIG": str(steps / "kubeconfig"), "HOME": str(steps)}
    attached = subprocess.Popen(["kubectl", "attach", "-i", "listener", "-c", "cat"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        attached.stdin.write("through attach\n")  # type: ignore[union-attr]
        attached.stdin.flush()  # type: ignore[union-attr]
        assert within(10, lambda: "through attach" in kubectl(steps, "logs", "listener").stdout)
    finally:
        attached.kill()
        attached.wait()
