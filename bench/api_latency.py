"""API call latency: `podnet apiserver` against Kubernetes' API call latency SLO
(p99 <= 1 s for single-object calls, <= 30 s for lists) and, in the same run,
against podnet's own floor: the same calls made in this process, without HTTP.

Measured, p50 and p99, on SQLite and on a three-member etcd: GET of one of 1 000
pods; create, then delete, of a ConfigMap; a strategic merge patch (a label on a
Deployment); LIST of the 1 000 pods as JSON and as a Table; watch-event delivery
to 1 and to 500 watchers, from the write's answer until each watcher has the
event (the HTTP watchers share one event loop, so the last also waits for this
process to read the streams before it).

The floor: what the server's handlers call, on a store opened here: api/'s write
verbs (verbs.create, delete, verbs.replace after the patch), the stored object or
list as served (through the Table printer for the Table), each answer put into
JSON; for watches, a WatchHub of this process with 1 or 500 subscribers.

Setup, and why: the server runs as its own process, TLS on 127.0.0.1 with client
certificates from a CA made for the run, over a store nothing else writes: a fresh
SQLite file, or three etcd members speaking TLS as a cluster lab's do, run by a
Topology lab of the bench's own (`apibench`, torn down at the end). A cluster lab
would bring its controller: its scheduler binds pods to nodes, its pod GC deletes
pods bound to nodes that do not exist, and every write sends it over all 1 000
pods again, on the two cores the server runs on. Here the pods are objects only
(Running on nodes n0-n9, as a kubelet reports them): all the API sees of a pod.

Goals: single-object p99 < 10 ms on SQLite, < 30 ms on etcd; LIST of 1 000 as a
Table p99 < 150 ms; watch delivery p99 < 50 ms at 500 watchers; the HTTP GET's
p50 <= 2x the in-process floor's.

Run as root: .venv/bin/python bench/api_latency.py [--store sqlite|etcd|both] [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from podnet.api import cluster, verbs
from podnet.api.delete import delete
from podnet.apiserver import objects, resources
from podnet.apiserver.patching import STRATEGIC, patched, recorded
from podnet.apiserver.tables.registry import to_table
from podnet.apiserver.tables.table import TableOptions
from podnet.apiserver.watch import WatchHub
from podnet.kernel import netns
from podnet.lab import certificates, state
from podnet.lab.names import member_namespace
from podnet.model.manifest import parse_resource
from podnet.store.base import Store, StoreError
from podnet.store.location import etcd_location, open_store
from podnet.store.tls import TlsFiles

LAB, NS, PODS, ETCD_MEMBERS = "apibench", "apibench", 1000, 3
SUBNET = "192.168.77"  # the etcd lab's switch; members at .10-.12, its client host at .254
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
SLO_SINGLE, SLO_LIST = 1.0, 30.0  # seconds, Kubernetes' API call latency SLO (p99)
SINGLE_GOAL = {"sqlite": 0.010, "etcd": 0.030}
TABLE_GOAL, WATCH_GOAL, GET_RATIO_GOAL = 0.150, 0.050, 2.0
POD_RESOURCE = resources.find("", "v1", "pods")
CONFIGMAPS = resources.find("", "v1", "configmaps")
DEPLOYMENTS = resources.find("apps", "v1", "deployments")
SINGLE = ("GET pod", "create ConfigMap", "delete ConfigMap", "strategic patch")
LISTS, WATCHES = ("LIST 1000 as JSON", "LIST 1000 as Table"), (1, 500)
Timings = dict[str, list[float]]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# What is stored.

def pod(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"web-{i:04d}", "namespace": NS, "labels": {"app": "web", "shard": str(i % 10)}},
        "spec": {"nodeName": f"n{i % 10}", "containers": [{
            "name": "web", "image": "nginx:1.27", "ports": [{"name": "http", "containerPort": 80}],
            "env": [{"name": "MODE", "value": "bench"}],
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}}}]},
        "status": {"phase": "Running", "podIP": f"10.244.{i % 10}.{i // 10 + 2}", "hostIP": f"10.0.0.{i % 10 + 2}",
                   "conditions": [{"type": "Ready", "status": "True"}]}}


def config_map(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS}, "data": data}


def seed(store: Store) -> None:
    """A cluster's settings, then the namespace, 1 000 pods, a Deployment to patch and a ConfigMap to watch."""
    cluster.save(store, cluster.ClusterConfig("10.244.0.0/16", "10.96.0.0/12", backend="host-gw",
                                              proxy_mode="nftables", iptables_backend="nft"))
    cluster.bootstrap(store)
    web = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}
    for document in [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, *map(pod, range(PODS)),
                     {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
                      "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": web}},
                     config_map("watched", {"n": "start"})]:
        verbs.create(store, parse_resource(document))


# Where it is stored, and the server in front of it.

Issue = Callable[..., TlsFiles]  # (stem, common name, addresses, organizations): a certificate of the run's CA


@contextmanager
def etcd_store(issue: Issue, directory: Path) -> Iterator[str]:
    """Three etcd members (TLS for clients and peers) in a Topology lab; the location
    reaches them from its client host."""
    members = [(f"etcd-{i}", f"{SUBNET}.{10 + i}") for i in range(ETCD_MEMBERS)]
    initial = ",".join(f"{name}=https://{ip}:2380" for name, ip in members)
    hosts: list[dict[str, Any]] = [{"name": "client"}]
    for name, ip in members:
        own = issue(name, name, (ip,))
        files = {"trusted-ca-file": own.cafile, "cert-file": own.certfile, "key-file": own.keyfile}
        hosts.append({"name": name, "readyPort": 2379, "command": [
            "etcd", "--name", name, "--data-dir", str(state.labs_dir() / LAB / name),
            "--listen-client-urls", f"https://{ip}:2379,https://127.0.0.1:2379",
            "--advertise-client-urls", f"https://{ip}:2379", "--listen-peer-urls", f"https://{ip}:2380",
            "--initial-advertise-peer-urls", f"https://{ip}:2380", "--client-cert-auth", "--peer-client-cert-auth",
            *(f"--{side}{flag}={path}" for side in ("", "peer-") for flag, path in files.items()),
            "--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", LAB]})
    lab = {"apiVersion": "podnet.dev/v1alpha1", "kind": "Topology", "metadata": {"name": LAB}, "hosts": hosts,
           "switches": [{"name": "lan", "host": "client", "addresses": [f"{SUBNET}.254/24"]}],
           "links": [{"endpoints": [f"{name}:eth0", f"lan:{name}"], "addresses": [f"{ip}/24"]}
                     for name, ip in members]}
    (directory / "lab.yaml").write_text(yaml.safe_dump(lab))
    podnet("lab", "up", str(directory / "lab.yaml"))
    try:
        location = etcd_location([f"{ip}:2379" for _, ip in members],
                                 str(netns.path(member_namespace(LAB, "client"))), issue("podnet", "podnet"))
        store = open_store(location)
        for _ in range(100):  # the members listen before they have elected a leader
            try:
                store.revision()
                break
            except StoreError:
                time.sleep(0.2)
        store.close()
        yield location
    finally:
        podnet("lab", "down", LAB)


@contextmanager
def api_server(location: str, issue: Issue, directory: Path) -> Iterator[str]:
    """`podnet apiserver` over the store, on a socket of 127.0.0.1 it inherits; its URL."""
    server = issue("apiserver", "kube-apiserver", ("127.0.0.1",))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    with (directory / "apiserver.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "podnet", "apiserver", "--store", location, "--listen-fd", str(sock.fileno()),
             "--tls-cert-file", server.certfile, "--tls-private-key-file", server.keyfile,
             "--client-ca-file", server.cafile], pass_fds=(sock.fileno(),), stdout=log, stderr=log)
        url = f"https://127.0.0.1:{sock.getsockname()[1]}"
        sock.close()
        try:
            yield url
        finally:
            process.terminate()
            process.wait(10)


def podnet(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "podnet", *args], check=True, capture_output=True)


# The calls: over HTTP, and in-process.

class Client:
    """One keep-alive connection for the calls, and as many as the watchers need."""

    def __init__(self, url: str, admin: TlsFiles) -> None:
        context = ssl.create_default_context(cafile=admin.cafile)
        context.load_cert_chain(admin.certfile, admin.keyfile)
        self.url = url
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=0))

    async def call(self, method: str, path: str, expect: int = 200, **options: Any) -> bytes:
        async with self.session.request(method, self.url + path, **options) as response:
            body = await response.read()
        if response.status != expect:
            raise SystemExit(f"{method} {path}: {response.status} {body[:300]!r}")
        return body


def http_cases(client: Client) -> dict[str, Callable[[int], Awaitable[Any]]]:
    pods, maps = f"/api/v1/namespaces/{NS}/pods", f"/api/v1/namespaces/{NS}/configmaps"
    patch = {"Content-Type": "application/strategic-merge-patch+json"}
    return {
        "GET pod": lambda i: client.call("GET", f"{pods}/web-{random.randrange(PODS):04d}"),
        "create ConfigMap": lambda i: client.call("POST", maps, 201, json=config_map(f"http-{i}", {"k": "v"})),
        "delete ConfigMap": lambda i: client.call("DELETE", f"{maps}/http-{i}"),
        "strategic patch": lambda i: client.call("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/web",
                                                 data=json.dumps({"metadata": {"labels": {"round": str(i)}}}),
                                                 headers=patch),
        "LIST 1000 as JSON": lambda i: client.call("GET", pods),
        "LIST 1000 as Table": lambda i: client.call("GET", pods, headers={"Accept": TABLE}),
    }


def floor_cases(store: Store) -> dict[str, Callable[[int], Any]]:
    def pods() -> dict[str, Any]:
        return objects.listing(store, POD_RESOURCE, NS, lambda _: True, None, None)

    def create(i: int) -> str:
        entry = verbs.create(store, parse_resource(recorded(None, config_map(f"floor-{i}", {"k": "v"}), "bench")))
        return json.dumps(objects.served(CONFIGMAPS, entry))

    def patch(i: int) -> str:
        current = objects.read(store, DEPLOYMENTS, NS, "web")
        after = patched(STRATEGIC, current, json.dumps({"metadata": {"labels": {"round": str(i)}}}).encode(),
                        "Deployment", {}, "bench")
        entry = verbs.replace(store, parse_resource(after), int(current["metadata"]["resourceVersion"]))
        return json.dumps(objects.served(DEPLOYMENTS, entry))

    return {
        "GET pod": lambda i: json.dumps(objects.read(store, POD_RESOURCE, NS, f"web-{random.randrange(PODS):04d}")),
        "create ConfigMap": create,
        "delete ConfigMap": lambda i: delete(store, "ConfigMap", NS, f"floor-{i}"),
        "strategic patch": patch,
        "LIST 1000 as JSON": lambda i: json.dumps(pods()),
        "LIST 1000 as Table": lambda i: json.dumps(to_table(pods(), time.time(), TableOptions.parse(None, "v1"))),
    }


async def run_cases(cases: dict[str, Callable[[int], Any]], rounds: int) -> Timings:
    """Each single-object call `rounds` times in turn (a create before its delete),
    the lists a fifth as often; the first few of each are warm-up."""
    timings: Timings = {name: [] for name in cases}
    warmup = 5
    for names, count in ((SINGLE, rounds), (LISTS, max(20, rounds // 5))):
        for i in range(count + warmup):
            for name in names:
                started = time.perf_counter()
                answer = cases[name](i)
                if asyncio.iscoroutine(answer):
                    await answer
                if i >= warmup:
                    timings[name].append(time.perf_counter() - started)
    return timings


async def delivery(receivers: list[Callable[[str], Awaitable[float]]], write: Callable[[str], Awaitable[Any]],
                   rounds: int) -> list[float]:
    """From each write's return until every receiver has it (by the mark it puts in the watched ConfigMap)."""
    latencies: list[float] = []
    for i in range(rounds):
        mark = f"mark-{len(receivers)}-{i}-{random.random()}"
        arrivals = [asyncio.create_task(receive(mark)) for receive in receivers]
        await write(mark)
        written = time.perf_counter()
        latencies += [arrival - written for arrival in await asyncio.gather(*arrivals)]
        await asyncio.sleep(random.uniform(0.0, 0.02))  # out of step with the server's looks at the store
    return latencies


async def http_watch(client: Client, watchers: int, rounds: int) -> list[float]:
    maps = f"/api/v1/namespaces/{NS}/configmaps"
    since = json.loads(await client.call("GET", maps))["metadata"]["resourceVersion"]
    path = f"{maps}?watch=1&resourceVersion={since}&timeoutSeconds=900&fieldSelector=metadata.name%3Dwatched"
    streams = await asyncio.gather(*(client.session.get(client.url + path) for _ in range(watchers)))

    async def receive(content: aiohttp.StreamReader, mark: str) -> float:
        while f'"{mark}"'.encode() not in await content.readline():
            pass
        return time.perf_counter()

    async def write(mark: str) -> None:
        await client.call("PATCH", f"{maps}/watched", data=json.dumps({"data": {"n": mark}}),
                          headers={"Content-Type": "application/merge-patch+json"})

    try:
        await asyncio.sleep(1.0)  # every watch subscribed
        return await delivery([partial(receive, stream.content) for stream in streams], write, rounds)
    finally:
        for stream in streams:
            stream.close()


async def floor_watch(store: Store, watchers: int, rounds: int) -> list[float]:
    hub = WatchHub(store)
    subscribed = [hub.subscribe(objects.prefix(CONFIGMAPS, NS), store.revision())[0] for _ in range(watchers)]

    async def receive(queue: asyncio.Queue[Any], mark: str) -> float:
        while True:
            change = await queue.get()
            if change is None:
                raise SystemExit("a watcher of the in-process hub was cut off")
            if (change.value or {}).get("data", {}).get("n") == mark:
                return time.perf_counter()

    async def write(mark: str) -> None:
        await asyncio.to_thread(verbs.replace, store, parse_resource(config_map("watched", {"n": mark})), None)

    try:
        return await delivery([partial(receive, watcher.queue) for watcher in subscribed], write, rounds)
    finally:
        for watcher in subscribed:
            hub.unsubscribe(watcher)


async def measured(cases: dict[str, Callable[[int], Any]], watch: Callable[[int, int], Awaitable[list[float]]],
                   options: argparse.Namespace) -> Timings:
    timings = await run_cases(cases, options.rounds)
    for watchers in WATCHES:
        timings[f"watch to {watchers}"] = await watch(watchers, options.watch_rounds)
    return timings


async def measure_http(url: str, admin: TlsFiles, options: argparse.Namespace) -> Timings:
    client = Client(url, admin)
    try:
        for _ in range(150):
            try:
                await client.call("GET", "/readyz")
                break
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(0.1)
        return await measured(http_cases(client), partial(http_watch, client), options)
    finally:
        await client.session.close()


# The table.

def report(kind: str, http: Timings, floor: Timings) -> None:
    print(f"\nAPI call latency on {kind}, ms ({os.cpu_count()} CPUs; HTTPS with a client certificate, one connection "
          f"for the calls)")
    print(f"{'':26}{'HTTP p50':>10}{'p99':>9}{'in-process p50':>16}{'p99':>9}{'HTTP/in-process p50':>21}  samples")
    for name, values in http.items():
        print(f"{name:26}{1000 * percentile(values, 0.5):10.2f}{1000 * percentile(values, 0.99):9.2f}"
              f"{1000 * percentile(floor[name], 0.5):16.2f}{1000 * percentile(floor[name], 0.99):9.2f}"
              f"{percentile(values, 0.5) / percentile(floor[name], 0.5):20.1f}x  {len(values)}")
    for what, value, goal, slo in (
            ("single-object p99", max(percentile(http[name], 0.99) for name in SINGLE), SINGLE_GOAL[kind], SLO_SINGLE),
            (f"LIST of {PODS} as a Table p99", percentile(http[LISTS[1]], 0.99), TABLE_GOAL, SLO_LIST),
            (f"watch delivery p99 at {WATCHES[-1]} watchers", percentile(http[f"watch to {WATCHES[-1]}"], 0.99),
             WATCH_GOAL, None)):
        anchor = f"; SLO p99 <= {slo:g} s, {value / slo:.4f} of it" if slo else ""
        print(f"  {what} {1000 * value:.1f} ms: {'meets' if value < goal else 'misses'} the goal "
              f"(< {1000 * goal:g} ms{anchor})")
    ratio = percentile(http["GET pod"], 0.5) / percentile(floor["GET pod"], 0.5)
    print(f"  HTTP GET p50 {ratio:.1f}x the in-process floor's: {'meets' if ratio <= GET_RATIO_GOAL else 'misses'} "
          f"the goal (<= {GET_RATIO_GOAL:g}x)")


def measure(kind: str, location: str, issue: Issue, directory: Path, options: argparse.Namespace) -> None:
    store = open_store(location)
    try:
        started = time.monotonic()
        seed(store)
        print(f"{kind}: {PODS} pods stored in {time.monotonic() - started:.1f} s", flush=True)
        with api_server(location, issue, directory) as url:
            http = asyncio.run(measure_http(url, issue("admin", "kubernetes-admin", (), ("system:masters",)), options))
        floor = asyncio.run(measured(floor_cases(store), partial(floor_watch, store), options))
    finally:
        store.close()
    report(kind, http, floor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "etcd", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=200, help="Of each single-object call (the lists: a fifth).")
    parser.add_argument("--watch-rounds", type=int, default=40, help="Writes seen by the watchers, at each count.")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="apibench-") as name:
        directory = Path(name)
        issue = partial(certificates.issue, certificates.authority(directory, "podnet apibench CA"), directory)
        if options.store in ("sqlite", "both"):
            measure("sqlite", str(directory / "store.db"), issue, directory, options)
        if options.store in ("etcd", "both"):
            with etcd_store(issue, directory) as location:
                measure("etcd", location, issue, directory, options)


if __name__ == "__main__":
    main()
