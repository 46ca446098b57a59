"""exec, attach, port-forward and log, served as kube-apiserver serves them: the
request authorized and checked against the pod (pod_streams.py), then proxied
to the kubelet of the pod's node (kubelet_client.py). An upgrade is forwarded
with every header it came with and, once the kubelet has switched protocols,
the client's connection and the kubelet's are spliced (splice.py); a kubelet's
refusal is passed on as it came. A log is streamed as the kubelet writes it,
so `kubectl logs -f` shows each line as it is written; a kubelet's refusal of
one becomes a Status, as kube-apiserver's response checker makes it."""

from __future__ import annotations

import asyncio

from aiohttp import web

from podnet.apiserver import objects, pod_streams, resources
from podnet.apiserver.auth import User, authorize
from podnet.apiserver.kubelet_client import (Head, KubeletError, KubeletExchange, Kubelets, KubeletUnreachable,
                                             kubelet_address)
from podnet.apiserver.paths import Target
from podnet.apiserver.splice import Splice
from podnet.apiserver.status import ApiError
from podnet.model.families import host_port
from podnet.store.base import Store

NODES = resources.find("", "v1", "nodes")
NO_CACHE = "no-cache, private"  # as server.py answers everything: a streamed answer sets its own
NOT_FORWARDED = frozenset({  # the client's headers the kubelet is not sent: ours to set, or the client's secrets
    "host", "authorization", "cookie", "proxy-authorization", "content-length", "transfer-encoding", "keep-alive",
    "proxy-connection", "te", "trailer", "x-forwarded-for"})
NOT_PASSED_BACK = frozenset({"content-length", "transfer-encoding", "keep-alive", "date", "server"})  # aiohttp's own
GENERIC_REFUSALS = {404: "the server could not find the requested resource",
                    403: "the server does not allow access to the requested resource"}


class KubeletProxy:
    def __init__(self, store: Store, kubelets: Kubelets) -> None:
        self.store = store
        self.kubelets = kubelets

    async def handle(self, request: web.Request, target: Target, user: User) -> web.StreamResponse:
        subresource = pod_streams.SUBRESOURCES[target.subresource or ""]
        authorize(user, subresource.verb, target.resource.name, target.resource.group, target.namespace,
                  subresource.name, target.name)
        if request.method not in subresource.methods:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        name = target.name or ""
        asked = pod_streams.read(subresource, name, request.query)
        pod = await asyncio.to_thread(objects.read, self.store, target.resource, target.namespace, name)
        location = pod_streams.locate(asked, pod)
        if location is None:
            return web.Response(body=b"", content_type="text/plain")
        assert NODES is not None
        node = await asyncio.to_thread(objects.read, self.store, NODES, None, location.node)
        host, port = kubelet_address(node)
        if subresource.upgrade:
            return await self._upgrade(request, host, port, location.target)
        return await self._log(request, host, port, location.target, name)

    async def _upgrade(self, request: web.Request, host: str, port: int, target: str) -> web.StreamResponse:
        if "upgrade" not in request.headers.get("Connection", "").lower():
            raise ApiError(400, "Upgrade request required")
        forwarded = [(k, v) for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED]
        try:
            exchange = await self.kubelets.request(host, port, request.method, target,
                                                   [*forwarded, ("X-Forwarded-For", _forwarded_for(request))])
        except KubeletUnreachable as err:
            raise ApiError(500, f"error dialing backend: {err}", "Unknown") from None
        try:
            head = await exchange.head()
            if head.status == 101:
                return await _spliced(request, exchange, head)
            if head.status < 400:
                raise ApiError(500, f"invalid upgrade response: status code {head.status}", "Unknown")
            return web.Response(status=head.status, body=await exchange.read_body(), headers=_passed_back(head))
        except KubeletError as err:
            raise ApiError(500, str(err), "Unknown") from None
        finally:
            exchange.close()

    async def _log(self, request: web.Request, host: str, port: int, target: str, name: str) -> web.StreamResponse:
        asked_for = f'Get "https://{host_port(host, port)}{target}"'
        try:
            exchange = await self.kubelets.request(host, port, "GET", target, [])
        except KubeletError as err:
            raise ApiError(500, f"{asked_for}: {err}", "Unknown") from None
        try:
            head = await exchange.head()
            if not 200 <= head.status <= 206:
                raise _log_refusal(head.status, (await exchange.read_body()).decode(errors="replace"), name)
            response = web.StreamResponse(headers={"Content-Type": "text/plain", "Cache-Control": NO_CACHE})
            await response.prepare(request)
            try:
                async for chunk in exchange.body():
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionError:
                pass  # the client stopped reading (kubectl logs -f, interrupted)
            return response
        except KubeletError as err:
            raise ApiError(500, f"{asked_for}: {err}", "Unknown") from None
        finally:
            exchange.close()


async def _spliced(request: web.Request, exchange: KubeletExchange, head: Head) -> web.StreamResponse:
    """The kubelet's 101 passed on, then the two connections spliced until either ends."""
    splice = Splice(request, exchange)
    splice.take_client()
    response = web.StreamResponse(status=101, headers=_passed_back(head))
    response.force_close()
    try:
        await splice.run(await response.prepare(request))
    except ConnectionError:
        pass  # the client left before the 101 reached it
    finally:
        splice.end()
    return response


def _forwarded_for(request: web.Request) -> str:
    """The client's address after whatever proxies it came through, as Go's proxies append it."""
    before = request.headers.get("X-Forwarded-For")
    return f"{before}, {request.remote}" if before else str(request.remote)


def _passed_back(head: Head) -> list[tuple[str, str]]:
    return [(k, v) for k, v in head.headers if k.lower() not in NOT_PASSED_BACK]


def _log_refusal(code: int, text: str, name: str) -> ApiError:
    """A kubelet's refusal of a log, as kube-apiserver's response checker words it."""
    if code == 400:
        return ApiError(400, text)
    if code == 500:
        return ApiError(500, f"Internal error occurred: {text}")
    message = GENERIC_REFUSALS.get(code, f"the server responded with the status code {code} but did not return "
                                         f"more information")
    return ApiError(code, message, details={"name": name, "group": "", "kind": "pods/log"})
