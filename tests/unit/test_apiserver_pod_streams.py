"""A pod's exec, attach, port-forward and log through the API server, as
kube-apiserver serves them: authorized, checked against the pod, then proxied to
the kubelet of the pod's node. The kubelet here is a fake one on 127.0.0.1,
speaking TLS with a throwaway CA and wanting the API server's kubelet-client
certificate; it answers upgrades with 101 and echoes bytes, and logs in chunks.
The API server runs without TLS (the test names each request's user), and the
upgrades are driven by a raw socket client, to see every byte."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from podnet.apiserver.auth import User
from podnet.apiserver.kubelet_client import NO_CREDENTIALS, client_context
from podnet.apiserver.server import make_app
from podnet.lab import certificates
from podnet.store.resources import key
from podnet.store.sqlite import SqliteStore

ADMIN = User("kubernetes-admin", ("system:masters",))
VIEWER = User("podnet-viewer", ("podnet:view",))
KUBELET_CLIENT = "kube-apiserver-kubelet-client"
PODS = "/api/v1/namespaces/default/pods"
SPDY = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": "v4.channel.k8s.io"}
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
WEBSOCKET = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": WS_KEY, "Sec-WebSocket-Protocol": "v5.channel.k8s.io, v4.channel.k8s.io"}
EARLY = b"kubelet speaks first"  # what the fake kubelet sends right after its 101
MIB = 1024 * 1024
WAIT = 5.0  # seconds any one read may take before the test fails, rather than hangs


# The fake kubelet.

@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    client: str  # the CN of the certificate the API server presented


@dataclass
class FakeKubelet:
    """Answers as kubelet's endpoint does: a 101 and then an echo for exec, attach
    and port-forward (an exec of `exit` closes at once); a log in two chunks, the
    second only once the test has seen the first; a refusal for pod `stale`."""
    context: ssl.SSLContext
    listener: socket.socket = field(default_factory=lambda: socket.create_server(("127.0.0.1", 0)))
    seen: list[Seen] = field(default_factory=list)
    first_line_read: threading.Event = field(default_factory=threading.Event)
    upgrade_ended: threading.Event = field(default_factory=threading.Event)  # the API server closed a splice
    waited_for_reader: list[bool] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def start(self) -> FakeKubelet:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            with self.context.wrap_socket(raw, server_side=True) as conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                text, _, early = head.partition(b"\r\n\r\n")
                request_line, *lines = text.decode().split("\r\n")
                method, target, _ = request_line.split(" ")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
                peer = dict(a for rdn in conn.getpeercert()["subject"] for a in rdn)  # type: ignore[index]
                self.seen.append(Seen(method, target, headers, peer["commonName"]))
                self._answer(conn, target, headers, early)
        except (OSError, ssl.SSLError):
            pass

    def _answer(self, conn: ssl.SSLSocket, target: str, headers: dict[str, str], early: bytes) -> None:
        if "/stale" in target:
            refusal = b"pod default/stale is not running on this node"
            status = b"400 Bad Request" if target.startswith("/containerLogs/") else b"404 Not Found"
            conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(refusal) + refusal)
            return
        if target.startswith("/containerLogs/"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"4\r\none\n\r\n")
            self.waited_for_reader.append(self.first_line_read.wait(WAIT))
            conn.sendall(b"4\r\ntwo\n\r\n0\r\n\r\n")
            return
        if headers.get("upgrade", "").lower() == "websocket":
            accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] +
                                                    "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
            chosen = headers["sec-websocket-protocol"].split(",")[0].strip()
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: " + chosen.encode() +
                         b"\r\n\r\n" + EARLY)
        else:
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                         b"X-Stream-Protocol-Version: " + headers["x-stream-protocol-version"].encode() +
                         b"\r\n\r\n" + EARLY)
        if "command=exit" in target:
            return  # the command ended at once: the kubelet closes
        if early:
            conn.sendall(early)
        while chunk := conn.recv(256 * 1024):
            conn.sendall(chunk)
        self.upgrade_ended.set()

    def stop(self) -> None:
        self.listener.close()


@dataclass(frozen=True)
class Pki:
    ca: certificates.Authority
    directory: Path

    def kubelet_context(self, authority: certificates.Authority | None = None) -> ssl.SSLContext:
        """A kubelet's serving context: its certificate for 127.0.0.1, from `authority`
        (the cluster's CA unless said), and the cluster's client certificates required."""
        where = self.directory / ("kubelet" if authority is None else "other")
        issued = certificates.issue(authority or self.ca, where, "kubelet", "node-1", ("127.0.0.1",))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(issued.certfile, issued.keyfile)
        context.load_verify_locations(str(self.ca.path))
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def api_server_context(self) -> ssl.SSLContext:
        issued = certificates.issue(self.ca, self.directory, "apiserver-kubelet-client", KUBELET_CLIENT,
                                    organizations=("system:masters",))
        return client_context(issued.certfile, issued.keyfile, str(self.ca.path))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(certificates.authority(tmp_path / "pki", "test-ca"), tmp_path / "pki")


@pytest.fixture
def kubelet(pki: Pki) -> Iterator[FakeKubelet]:
    fake = FakeKubelet(pki.kubelet_context()).start()
    yield fake
    fake.stop()


# The cluster in the store.

def pod(name: str, containers: tuple[str, ...] = ("echo",), node: str | None = "node-1", phase: str = "Running",
        state: dict[str, Any] | None = None, init: tuple[str, ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": c, "image": "nginx"} for c in containers]}
    if init:
        spec["initContainers"] = [{"name": c, "image": "busybox"} for c in init]
    if node:
        spec["nodeName"] = node
    statuses = [{"name": c, "ready": True, "restartCount": 0, "state": state or {"running": {}}} for c in containers]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": spec, "status": {"phase": phase, "containerStatuses": statuses}}


def node(name: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname",
                                                                                       "address": name}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}


def cluster(store: SqliteStore, kubelet_port: int) -> None:
    for document in (pod("web"), pod("two", ("a", "b"), init=("init",)), pod("pending", node=None),
                     pod("done", phase="Succeeded", state={"terminated": {"exitCode": 0}}),
                     pod("failed", phase="Failed", state={"terminated": {"exitCode": 1}}),
                     pod("waiting", phase="Pending", state={"waiting": {"reason": "ContainerCreating"}}),
                     pod("pulling", phase="Pending", state={"waiting": {"reason": "ErrImagePull"}}),
                     pod("stale"), pod("lost", node="node-gone"), pod("elsewhere", node="node-2")):
        store.put(key("Pod", "default", document["metadata"]["name"]), document)
    store.put(key("Node", "", "node-1"), node("node-1", kubelet_port))


@asynccontextmanager
async def api(store: SqliteStore, kubelet_context: ssl.SSLContext | None) -> AsyncIterator[TestClient]:
    """The API server; a request is the viewer's if it says `X-Test-User: view`, the admin's otherwise."""
    def authenticate(request: web.Request) -> User:
        return VIEWER if request.headers.get("X-Test-User") == "view" else ADMIN

    server = TestServer(make_app(store, authenticate, kubelet_context))
    await server.start_server(shutdown_timeout=1.0)  # as `podnet apiserver` runs: a failed test's splice ends too
    async with TestClient(server) as client:
        yield client


def served(store: SqliteStore, pki: Pki, kubelet: FakeKubelet, check: Any, credentials: bool = True) -> None:
    cluster(store, kubelet.port)

    async def run() -> None:
        async with api(store, pki.api_server_context() if credentials else None) as client:
            await check(client)

    asyncio.run(run())


# A raw HTTP/1.1 client, to see the 101 and every byte after it.

@dataclass
class Upgraded:
    status: int
    headers: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


async def upgrade(client: TestClient, method: str, path: str, headers: dict[str, str],
                  early: bytes = b"") -> Upgraded:
    """The request sent (with `early`, the first bytes of the new protocol, in the
    same write), and the answer's head read."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {client.server.host}", *(f"{k}: {v}" for k, v in headers.items())]
    if method == "POST":
        lines.append("Content-Length: 0")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + early)
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)).decode()
    status_line, *header_lines = head.strip().split("\r\n")
    answered = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return Upgraded(int(status_line.split(" ")[1]), answered, reader, writer)


# Discovery and authorization.

def test_discovery_lists_the_kubelet_subresources_as_kube_apiserver(store: SqliteStore, pki: Pki,
                                                                    kubelet: FakeKubelet) -> None:
    async def check(client: TestClient) -> None:
        legacy = (await (await client.get("/api/v1")).json())["resources"]
        listed = {r["name"]: (r["kind"], r["verbs"]) for r in legacy if r["name"].startswith("pods/")}
        assert listed == {"pods/attach": ("PodAttachOptions", ["create", "get"]),
                          "pods/exec": ("PodExecOptions", ["create", "get"]), "pods/log": ("Pod", ["get"]),
                          "pods/portforward": ("PodPortForwardOptions", ["create", "get"]),
                          "pods/status": ("Pod", ["get", "patch", "update"])}
        aggregated = await (await client.get("/api", headers={
            "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})).json()
        pods = next(r for r in aggregated["items"][0]["versions"][0]["resources"] if r["resource"] == "pods")
        subresources = {s["subresource"]: (s["responseKind"]["kind"], s["verbs"]) for s in pods["subresources"]}
        assert subresources == {name.split("/")[1]: answer for name, answer in listed.items()}

    served(store, pki, kubelet, check)


def test_a_viewer_may_read_a_log_but_not_exec_attach_or_port_forward(store: SqliteStore, pki: Pki,
                                                                      kubelet: FakeKubelet) -> None:
    async def check(client: TestClient) -> None:
        for method, sub, headers in (("POST", "exec?command=ls", SPDY), ("GET", "exec?command=ls", WEBSOCKET),
                                     ("POST", "attach", SPDY), ("GET", "portforward?ports=80", WEBSOCKET)):
            refused = await client.request(method, f"{PODS}/web/{sub}", headers={**headers, "X-Test-User": "view"})
            status = await refused.json()
            word = sub.split("?")[0]
            assert (refused.status, status["reason"]) == (403, "Forbidden")
            assert f'User "podnet-viewer" cannot create resource "pods/{word}" in API group "" in the namespace ' \
                   f'"default"' in status["message"]
        kubelet.first_line_read.set()
        log = await client.get(f"{PODS}/web/log", headers={"X-Test-User": "view"})
        assert (log.status, await log.text()) == (200, "one\ntwo\n")
        for user, allowed in (("view", False), ("admin", True)):
            review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                      "spec": {"resourceAttributes": {"verb": "create", "resource": "pods", "subresource": "exec",
                                                      "namespace": "default"}}}
            answer = await client.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=review,
                                       headers={"X-Test-User": user})
            assert (await answer.json())["status"]["allowed"] is allowed

    served(store, pki, kubelet, check)


# Refusals, in kube-apiserver's words (kubectl's where only kubectl checks).

REFUSALS = [  # name, method, path under the pods (exec, attach and port-forward ask for SPDY), (code, message)
    ("a missing pod", "POST", "nope/exec?command=ls", (404, 'pods "nope" not found')),
    ("a pod on no node", "POST", "pending/exec?command=ls", (400, "pod pending does not have a host assigned")),
    ("a port-forward to a pod on no node", "POST", "pending/portforward",
     (400, "pod pending does not have a host assigned")),
    ("a container the pod does not have", "POST", "two/exec?command=ls&container=nope",
     (400, "container nope is not valid for pod two, choose one of: [init a b]")),
    ("no container, the pod having several", "POST", "two/attach",
     (400, "a container name must be specified for pod two, choose one of: [init a b]")),
    ("an exec into a completed pod", "POST", "done/exec?command=ls",
     (400, "cannot exec into a container in a completed pod; current phase is Succeeded")),
    ("an attach to a completed pod", "POST", "failed/attach",
     (400, "cannot attach a container in a completed pod; current phase is Failed")),
    ("an exec with no command", "POST", "web/exec", (400, "you must specify at least one command for the container")),
    ("a log of a container waiting to start", "GET", "waiting/log",
     (400, 'container "echo" in pod "waiting" is waiting to start: ContainerCreating')),
    ("a log of a container whose image cannot be pulled", "GET", "pulling/log",
     (400, 'container "echo" in pod "pulling" is waiting to start: image can\'t be pulled')),
    ("a previous log of a container that never ended", "GET", "web/log?previous=true",
     (400, 'previous terminated container "echo" in pod "web" not found')),
    ("a log of a container the pod does not have", "GET", "web/log?container=nope",
     (400, "container nope is not valid for pod web, choose one of: [echo]")),
    ("a negative tailLines", "GET", "web/log?tailLines=-1",
     (422, 'PodLogOptions "web" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0')),
    ("a limitBytes of 0", "GET", "web/log?limitBytes=0",
     (422, 'PodLogOptions "web" is invalid: limitBytes: Invalid value: 0: must be greater than 0')),
    ("both sinceSeconds and sinceTime", "GET", "web/log?sinceSeconds=5&sinceTime=2026-12-07T00:00:00Z",
     (422, 'PodLogOptions "web" is invalid: : Forbidden: at most one of `sinceTime` or `sinceSeconds` may be '
           'specified')),
    ("a tailLines that is not a number", "GET", "web/log?tailLines=ten",
     (400, 'strconv.ParseInt: parsing "ten": invalid syntax')),
    ("a pod on a node that is not there", "POST", "lost/exec?command=ls", (404, 'nodes "node-gone" not found')),
    ("a PUT on exec", "PUT", "web/exec?command=ls", (405, "the server does not allow this method on the requested "
                                                          "resource")),
    ("a POST of a log", "POST", "web/log", (405, "the server does not allow this method on the requested resource")),
]


@pytest.mark.parametrize(("case", "method", "path", "refusal"), REFUSALS, ids=[row[0] for row in REFUSALS])
def test_a_request_the_pod_cannot_serve_is_refused_as_kube_apiserver_refuses_it(
        store: SqliteStore, pki: Pki, kubelet: FakeKubelet, case: str, method: str, path: str,
        refusal: tuple[int, str]) -> None:
    async def check(client: TestClient) -> None:
        answer = await client.request(method, f"{PODS}/{path}", headers={} if "/log" in path else SPDY)
        status = await answer.json()
        assert (answer.status, status["message"]) == refusal
        assert status["kind"] == "Status" and status["code"] == refusal[0]

    served(store, pki, kubelet, check)
    assert kubelet.seen == []  # refused before any kubelet is asked


def test_an_exec_that_is_not_an_upgrade_is_refused(store: SqliteStore, pki: Pki, kubelet: FakeKubelet) -> None:
    async def check(client: TestClient) -> None:
        answer = await client.post(f"{PODS}/web/exec?command=ls")
        assert (answer.status, (await answer.json())["message"]) == (400, "Upgrade request required")

    served(store, pki, kubelet, check)


def test_the_log_of_a_pod_on_no_node_is_empty(store: SqliteStore, pki: Pki, kubelet: FakeKubelet) -> None:
    async def check(client: TestClient) -> None:
        answer = await client.get(f"{PODS}/pending/log")
        assert (answer.status, answer.content_type, await answer.read()) == (200, "text/plain", b"")

    served(store, pki, kubelet, check)


# Upgrades, spliced.

@pytest.mark.parametrize(("method", "headers", "chosen", "early"), [
    ("POST", SPDY, {"x-stream-protocol-version": "v4.channel.k8s.io", "upgrade": "SPDY/3.1"}, b""),
    ("GET", WEBSOCKET, {"sec-websocket-protocol": "v5.channel.k8s.io", "upgrade": "websocket",
                        "sec-websocket-accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}, b"\x82\x01\x00"),
], ids=["SPDY by POST", "WebSocket by GET, a frame sent with the request"])
def test_an_exec_is_spliced_to_the_kubelet_byte_for_byte(store: SqliteStore, pki: Pki, kubelet: FakeKubelet,
                                                         method: str, headers: dict[str, str],
                                                         chosen: dict[str, str], early: bytes) -> None:
    async def check(client: TestClient) -> None:
        spliced = await upgrade(client, method, f"{PODS}/web/exec?command=sh&command=-c&command=echo%20hi"
                                                f"&stdin=true&stdout=true&tty=true", headers, early)
        assert spliced.status == 101 and chosen.items() <= spliced.headers.items()
        assert await asyncio.wait_for(spliced.reader.readexactly(len(EARLY + early)), WAIT) == EARLY + early
        for message in (b"\x80\x03\x00\x01", b"stdin bytes", bytes(range(256))):
            spliced.writer.write(message)
            assert await asyncio.wait_for(spliced.reader.readexactly(len(message)), WAIT) == message
        spliced.writer.close()

    served(store, pki, kubelet, check)
    (seen,) = kubelet.seen
    assert (seen.method, seen.target) == (method, "/exec/default/web/echo?command=sh&command=-c&command=echo+hi"
                                                  "&input=1&output=1&error=1&tty=1")
    assert seen.client == KUBELET_CLIENT
    assert {k.lower(): v for k, v in headers.items()}.items() <= seen.headers.items()
    assert seen.headers["host"] == f"127.0.0.1:{kubelet.port}" and seen.headers["x-forwarded-for"] == "127.0.0.1"


def test_either_side_ending_ends_both(store: SqliteStore, pki: Pki, kubelet: FakeKubelet) -> None:
    async def check(client: TestClient) -> None:
        ended_by_kubelet = await upgrade(client, "POST", f"{PODS}/web/exec?command=exit", SPDY)
        assert ended_by_kubelet.status == 101
        assert await asyncio.wait_for(ended_by_kubelet.reader.read(), WAIT) == EARLY  # and then the end
        ended_by_client = await upgrade(client, "POST", f"{PODS}/web/attach?stdin=1", SPDY)
        await asyncio.wait_for(ended_by_client.reader.readexactly(len(EARLY)), WAIT)
        ended_by_client.writer.close()
        assert await asyncio.to_thread(kubelet.upgrade_ended.wait, WAIT)

    served(store, pki, kubelet, check)
    assert [seen.target for seen in kubelet.seen] == ["/exec/default/web/echo?command=exit&output=1&error=1",
                                                      "/attach/default/web/echo?input=1&output=1&error=1"]


def test_ten_mib_each_way_arrive_whole_and_fast(store: SqliteStore, pki: Pki, kubelet: FakeKubelet) -> None:
    sent = bytes(range(256)) * (10 * MIB // 256)

    async def check(client: TestClient) -> None:
        spliced = await upgrade(client, "POST", f"{PODS}/web/portforward", SPDY)
        assert spliced.status == 101
        await asyncio.wait_for(spliced.reader.readexactly(len(EARLY)), WAIT)

        async def send() -> None:
            for at in range(0, len(sent), 256 * 1024):
                spliced.writer.write(sent[at:at + 256 * 1024])
                await spliced.writer.drain()

        started = time.monotonic()
        echoed, _ = await asyncio.wait_for(asyncio.gather(spliced.reader.readexactly(len(sent)), send()), 30)
        elapsed = time.monotonic() - started
        assert echoed == sent
        assert elapsed < 10, f"10 MiB each way took {elapsed:.1f} s"
        spliced.writer.close()

    served(store, pki, kubelet, check)
    assert kubelet.seen[0].target == "/portForward/default/web"


def test_a_kubelets_refusal_of_an_upgrade_is_passed_on_as_it_came(store: SqliteStore, pki: Pki,
                                                                   kubelet: FakeKubelet) -> None:
    async def check(client: TestClient) -> None:
        refused = await client.post(f"{PODS}/stale/exec?command=ls", headers=SPDY)
        assert (refused.status, refused.headers["Content-Type"], await refused.text()) == (
            404, "text/plain; charset=utf-8", "pod default/stale is not running on this node")

    served(store, pki, kubelet, check)


def test_an_unreachable_kubelet_is_a_status_in_kube_apiservers_words(store: SqliteStore, pki: Pki,
                                                                     kubelet: FakeKubelet) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    store.put(key("Node", "", "node-2"), node("node-2", port))

    async def check(client: TestClient) -> None:
        dialled = await client.post(f"{PODS}/elsewhere/exec?command=ls", headers=SPDY)
        status = await dialled.json()
        assert (dialled.status, status["reason"], status["message"]) == (
            500, "Unknown", f"error dialing backend: dial tcp 127.0.0.1:{port}: connect: connection refused")
        logged = await (await client.get(f"{PODS}/elsewhere/log")).json()
        assert logged["message"] == (f'Get "https://127.0.0.1:{port}/containerLogs/default/elsewhere/echo": '
                                     f"dial tcp 127.0.0.1:{port}: connect: connection refused")

    served(store, pki, kubelet, check)


def test_a_kubelet_whose_certificate_the_cluster_ca_did_not_sign_is_not_trusted(store: SqliteStore, pki: Pki,
                                                                               kubelet: FakeKubelet) -> None:
    impostor = FakeKubelet(pki.kubelet_context(certificates.authority(pki.directory / "other-ca", "other"))).start()
    store.put(key("Node", "", "node-2"), node("node-2", impostor.port))

    async def check(client: TestClient) -> None:
        status = await (await client.post(f"{PODS}/elsewhere/exec?command=ls", headers=SPDY)).json()
        assert status["code"] == 500 and status["message"].startswith(
            "error dialing backend: tls: failed to verify certificate:")

    try:
        served(store, pki, kubelet, check)
    finally:
        impostor.stop()
    assert impostor.seen == []


def test_without_kubelet_credentials_the_server_says_so(store: SqliteStore, pki: Pki, kubelet: FakeKubelet) -> None:
    async def check(client: TestClient) -> None:
        status = await (await client.post(f"{PODS}/web/exec?command=ls", headers=SPDY)).json()
        assert (status["code"], status["message"]) == (500, NO_CREDENTIALS)

    served(store, pki, kubelet, check, credentials=False)


# Logs, streamed.

def test_a_followed_log_shows_each_chunk_before_the_next_is_written(store: SqliteStore, pki: Pki,
                                                                    kubelet: FakeKubelet) -> None:
    async def check(client: TestClient) -> None:
        log = await client.get(f"{PODS}/web/log?follow=true&tailLines=10&timestamps=1&stdin=ignored")
        assert (log.status, log.headers["Content-Type"], log.headers["Transfer-Encoding"]) == (
            200, "text/plain", "chunked")
        first = await asyncio.wait_for(log.content.readline(), WAIT)
        kubelet.first_line_read.set()  # only now does the kubelet write the second line
        assert (first, await log.content.read()) == (b"one\n", b"two\n")

    served(store, pki, kubelet, check)
    assert kubelet.waited_for_reader == [True]
    assert kubelet.seen[0].target == "/containerLogs/default/web/echo?follow=true&timestamps=true&tailLines=10"


def test_a_kubelets_refusal_of_a_log_is_a_status(store: SqliteStore, pki: Pki, kubelet: FakeKubelet) -> None:
    async def check(client: TestClient) -> None:
        refused = await client.get(f"{PODS}/stale/log")
        assert refused.status == 400
        assert json.loads(await refused.text())["message"] == "pod default/stale is not running on this node"

    served(store, pki, kubelet, check)
