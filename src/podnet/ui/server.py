"""`podnet ui`: the web view of a cluster lab, served by aiohttp on loopback.

The page (static/) draws the cluster with cytoscape.js and asks this server
for what it shows: the cluster from the store, flows from the node agents
(as `podnet observe` asks them, pushed to the page as server-sent events), a
trace (as `podnet trace` computes it), and the details of a pod or a node.
Nothing on the page comes from the internet: cytoscape.js is vendored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from podnet.store.snapshot import Snapshot
from podnet.api import cluster
from podnet.errors import PodnetError
from podnet.lab.client import flow_merger
from podnet.lab.plan import INTERNET_IPS
from podnet.model.families import FAMILIES, family_of
from podnet.lab.state import LabRecord
from podnet.network.node import render_node_network
from podnet.observe.client import Merger
from podnet.observe.filter import flow_filter
from podnet.observe.flows import Flow
from podnet.policy.evaluator import PolicyView
from podnet.store.location import open_store
from podnet.trace.ends import source_end, target
from podnet.trace.path import PathTracer

STATIC = Path(__file__).parent / "static"
FLOW_BACKLOG = 200  # flows a page gets when it opens
log = logging.getLogger("podnet.ui")


class ClusterView:
    """One lab's store and agents, as the page's requests need them."""

    def __init__(self, record: LabRecord) -> None:
        self.record = record
        self.merger: Merger | None = None
        self.recent: list[Flow] = []
        self.listeners: set[asyncio.Queue[Flow]] = set()

    def snapshot(self) -> tuple[Snapshot, cluster.ClusterConfig]:
        store = open_store(self.record.store)
        try:
            return Snapshot.read(store), cluster.load(store)
        finally:
            store.close()

    def cluster_json(self) -> dict[str, object]:
        snapshot, config = self.snapshot()
        return {
            "lab": self.record.name, "backend": config.backend, "podSubnet": config.pod_subnet,
            "nodes": [{"name": n.metadata.name, "ip": n.internal_ip, "ips": list(n.internal_ips),
                       "podCIDR": n.pod_cidr, "podCIDRs": list(n.pod_cidrs)} for n in snapshot.nodes],
            "pods": [{"name": p.metadata.name, "namespace": p.metadata.namespace, "node": p.node_name, "ip": p.pod_ip,
                      "ips": list(p.pod_ips), "labels": dict(p.metadata.labels), "ready": p.ready}
                     for p in snapshot.pods if p.pod_ip],
            "services": [{"name": s.metadata.name, "namespace": s.metadata.namespace, "type": s.type,
                          "clusterIP": s.cluster_ip, "clusterIPs": list(s.cluster_ips),
                          "ports": [p.port for p in s.ports]}
                         for s in snapshot.services if s.cluster_ip and not s.headless],
        }

    def trace_json(self, source: str, destination: str, protocol: str, namespace: str,
                   family: str | None = None) -> dict[str, object]:
        """As `podnet trace`; `family` (IPv4, IPv6) as its -4 and -6."""
        if family is not None and family not in FAMILIES:
            raise PodnetError(f"family {family!r}: IPv4 or IPv6")
        snapshot, config = self.snapshot()
        tracer = PathTracer(snapshot, config)
        end = target(tracer, snapshot.services, destination, namespace, protocol, INTERNET_IPS, family)
        start = source_end(tracer, source, namespace, INTERNET_IPS, family_of(end.end.address))
        return tracer.trace(start, end.end, end.port, protocol).to_json()

    def pod_json(self, namespace: str, name: str) -> dict[str, object]:
        snapshot, _ = self.snapshot()
        pod = next((p for p in snapshot.pods if p.metadata.key == f"{namespace}/{name}"), None)
        if pod is None:
            raise web.HTTPNotFound(text=f"no pod {namespace}/{name}")
        policies = PolicyView(snapshot.pods, snapshot.namespaces, snapshot.policies)
        return {"kind": "pod", "name": pod.metadata.key, "ip": pod.pod_ip, "ips": list(pod.pod_ips),
                "node": pod.node_name,
                "labels": dict(pod.metadata.labels), "ready": pod.ready,
                "ports": [f"{p.name or ''} {p.container_port}/{p.protocol}".strip()
                          for c in pod.containers for p in c.ports],
                "policies": {direction: [p.metadata.key for p in policies.selecting(pod, direction)]
                             for direction in ("Ingress", "Egress")}}

    def node_json(self, name: str) -> dict[str, object]:
        snapshot, config = self.snapshot()
        node = snapshot.node(name)
        if node is None or not node.pod_cidr:
            raise web.HTTPNotFound(text=f"no node {name} with a pod subnet")
        network = render_node_network(node, snapshot.nodes, config.pod_subnet, config.backend)
        return {"kind": "node", "name": name, "ip": node.internal_ip, "ips": list(node.internal_ips),
                "podCIDR": node.pod_cidr, "podCIDRs": list(node.pod_cidrs), "gateway": network.gateway,
                "gateways": list(network.gateways), "backend": config.backend,
                "routes": sorted(str(route) for route in network.routes),
                "pods": sorted(p.metadata.key for p in snapshot.pods if p.node_name == name and p.pod_ip)}

    async def follow_flows(self) -> None:
        """Ask every agent for new flows twice a second, and pass them to the pages."""
        while True:
            try:
                if self.merger is None:
                    self.merger = await asyncio.to_thread(flow_merger, self.record.name)
                    fresh = await asyncio.to_thread(self.merger.poll, FLOW_BACKLOG)
                else:
                    fresh = await asyncio.to_thread(self.merger.poll)
            except PodnetError as err:  # an agent restarting: ask again shortly
                log.warning("flows: %s", err)
                self.merger = None
                fresh = []
            self.recent = (self.recent + fresh)[-FLOW_BACKLOG:]
            for flow in fresh:
                for queue in self.listeners:
                    queue.put_nowait(flow)
            await asyncio.sleep(0.5)


def make_app(view: ClusterView) -> web.Application:
    app = web.Application()
    routes = web.RouteTableDef()

    @routes.get("/")
    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    @routes.get("/api/cluster")
    async def cluster_api(_: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(view.cluster_json))

    @routes.get("/api/flows")
    async def flows_api(request: web.Request) -> web.Response:
        try:
            wanted = _filter(request)
        except PodnetError as err:
            return web.json_response({"error": str(err)}, status=400)
        return web.json_response([f.to_json() for f in view.recent if wanted(f)])

    @routes.get("/api/flows/stream")
    async def flows_stream(request: web.Request) -> web.StreamResponse:
        try:
            wanted = _filter(request)
        except PodnetError as err:
            return web.json_response({"error": str(err)}, status=400)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        async for flow in _flows_of(view):
            if wanted(flow):
                await response.write(f"data: {json.dumps(flow.to_json())}\n\n".encode())
        return response

    @routes.get("/api/trace")
    async def trace_api(request: web.Request) -> web.Response:
        query = request.query
        try:
            found = await asyncio.to_thread(view.trace_json, query.get("from", ""), query.get("to", ""),
                                            query.get("proto", "tcp"), query.get("namespace", "default"),
                                            query.get("family") or None)
        except PodnetError as err:
            return web.json_response({"error": str(err)}, status=400)
        return web.json_response(found)

    @routes.get("/api/pod/{namespace}/{name}")
    async def pod_api(request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(view.pod_json, request.match_info["namespace"],
                                                         request.match_info["name"]))

    @routes.get("/api/node/{name}")
    async def node_api(request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(view.node_json, request.match_info["name"]))

    routes.static("/static", STATIC)
    app.add_routes(routes)

    async def start_following(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(view.follow_flows())
        yield
        task.cancel()

    app.cleanup_ctx.append(start_following)
    return app


async def _flows_of(view: ClusterView) -> AsyncIterator[Flow]:
    queue: asyncio.Queue[Flow] = asyncio.Queue()
    view.listeners.add(queue)
    try:
        while True:
            yield await queue.get()
    finally:
        view.listeners.discard(queue)


def _filter(request: web.Request):  # type: ignore[no-untyped-def]
    """observe's filters, from the query string."""
    query = request.query
    port = query.get("port")
    return flow_filter(query.get("from_pod") or None, query.get("to_pod") or None, query.get("pod") or None,
                       query.get("namespace") or None, None, None, query.get("service") or None,
                       tuple(v for v in query.getall("verdict", []) if v), query.get("protocol") or None,
                       int(port) if port and port.isdigit() else None, query.get("ip") or None, None)


def serve(record: LabRecord, address: str, port: int) -> None:
    # the pages' event streams never end by themselves: a stop does not wait for them
    web.run_app(make_app(ClusterView(record)), host=address, port=port, print=None, shutdown_timeout=0.5)
