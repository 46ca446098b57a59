"""`podnet apiserver`: the Kubernetes API of a cluster, over HTTPS with client
certificates, on every address it is given (a lab hands it a socket opened in the
machine's namespace, on 127.0.0.1, as kind publishes its API server)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from podnet.api.verbs import AlreadyExists, Conflict, NamespaceTerminating
from podnet.api.writes import NotFound
from podnet.apiserver import discovery, openapi, paths, swagger
from podnet.apiserver.auth import User, user_of
from podnet.apiserver.kubelet_client import Kubelets, client_context
from podnet.apiserver.rest import Rest
from podnet.apiserver.status import ApiError, already_exists, not_found
from podnet.apiserver.watch import WatchHub
from podnet.errors import ManifestError, PodnetError
from podnet.model import kinds
from podnet.model.version import GIT_VERSION, KUBERNETES_VERSION
from podnet.store.base import Store

log = logging.getLogger("podnet.apiserver")

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's limit on a request body
NO_CACHE = "no-cache, private"  # as kube-apiserver answers: kubectl's dispatcher would keep /version for 2 h


@dataclass(frozen=True)
class ServerOptions:
    cert_file: str
    key_file: str
    client_ca_file: str
    listen: tuple[tuple[str, int], ...] = ()  # addresses to bind
    listen_fds: tuple[int, ...] = ()  # sockets already bound, inherited
    kubelet_client_certificate: str | None = None  # what it presents to kubelets (exec, logs); none: it cannot
    kubelet_client_key: str | None = None
    kubelet_certificate_authority: str | None = None  # what kubelets' serving certificates are checked against


def version() -> dict[str, str]:
    major, minor, _ = KUBERNETES_VERSION  # it picks the kubectl a dispatcher runs
    return {"major": str(major), "minor": str(minor), "gitVersion": GIT_VERSION,
            "gitCommit": "podnet", "gitTreeState": "clean", "buildDate": "2026-12-07T00:00:00Z",
            "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"}


def tls_context(options: ServerOptions) -> ssl.SSLContext:
    """The server's certificate; a client's is asked for and checked against the
    cluster's CA (a request without one is then 401, as anonymous is)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(options.cert_file, options.key_file)
    context.load_verify_locations(options.client_ca_file)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def peer_user(request: web.Request) -> User:
    """The user of the TLS client certificate the connection presented."""
    transport = request.transport
    return user_of(transport.get_extra_info("peercert") if transport else None)


def kubelet_tls(options: ServerOptions) -> ssl.SSLContext | None:
    """TLS to kubelets, if the server was given its kubelet-client credentials."""
    files = (options.kubelet_client_certificate, options.kubelet_client_key, options.kubelet_certificate_authority)
    if not all(files):
        return None
    try:
        return client_context(*files)  # type: ignore[arg-type]
    except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
        raise PodnetError(f"cannot use the kubelet client credentials {', '.join(map(str, files))}: {err}") from None


def make_app(store: Store, authenticate: Callable[[web.Request], User] = peer_user,
             kubelet_context: ssl.SSLContext | None = None) -> web.Application:
    """The API over the store; `authenticate` names the request's user (a test's
    app, with no TLS underneath, names its own); `kubelet_context` is how it
    reaches kubelets, for a pod's exec, attach, port-forward and log."""
    hub = WatchHub(store)
    rest = Rest(store, hub, Kubelets(kubelet_context))

    @web.middleware
    async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response = await handler(request)
            if not response.prepared:  # a watch has sent its own
                response.headers.setdefault("Cache-Control", NO_CACHE)
            return response
        except ApiError as err:
            return _status(err)
        except NotFound as err:
            return _status(not_found(_resource_word(err.kind), err.name, _group(err.kind)))
        except AlreadyExists as err:
            return _status(already_exists(_resource_word(err.kind), err.name, _group(err.kind)))
        except Conflict as err:
            return _status(ApiError(409, str(err), "Conflict", {"name": err.name, "kind": _resource_word(err.kind)}))
        except NamespaceTerminating as err:
            return _status(ApiError(403, str(err)))
        except ManifestError as err:
            return _status(ApiError(422, f"{err.field}: {err.problem}" if err.field else err.problem, "Invalid",
                                    {"causes": [{"reason": "FieldValueInvalid", "message": err.problem,
                                                 "field": err.field}]}))
        except PodnetError as err:
            return _status(ApiError(400, str(err)))
        except web.HTTPRequestEntityTooLarge:
            return _status(ApiError(413, "Request entity too large"))
        except web.HTTPException:
            raise
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return _status(ApiError(500, "an internal error occurred; the API server's log has the details"))

    async def open_paths(request: web.Request) -> web.StreamResponse | None:
        if request.path == "/version":
            return _json(version())
        if request.path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        return None

    async def route(request: web.Request) -> web.StreamResponse:
        answered = await open_paths(request)
        if answered is not None:
            return answered
        user = authenticate(request)
        if request.method == "GET" and request.path.rstrip("/").startswith(openapi.ROOT):  # built once, off the loop
            return await asyncio.to_thread(openapi.respond, request.path, request.query.get("hash"),
                                           request.headers.get("If-None-Match"))
        if request.method == "GET" and request.path.rstrip("/") == swagger.ROOT:
            return await asyncio.to_thread(swagger.respond, request.headers.get("Accept"),
                                           request.headers.get("If-None-Match"))
        answered = _discovery(request)
        if answered is not None:
            return answered
        target = paths.parse(request.path)
        if target is None:
            raise ApiError(404, "the server could not find the requested resource")
        return await rest.handle(request, target, user)

    app = web.Application(middlewares=[errors], client_max_size=MAX_BODY)

    async def cache(_: web.Application) -> Any:
        await hub.start()
        yield
        await hub.stop()

    app.cleanup_ctx.append(cache)
    app.router.add_route("*", r"/{tail:[\s\S]*}", route)  # every path, even one with a newline in it
    return app


def _discovery(request: web.Request) -> web.StreamResponse | None:
    segments = [s for s in request.path.split("/") if s]
    if request.method != "GET" or not segments or segments[0] not in ("api", "apis") or len(segments) > 3:
        return None
    aggregated = discovery.aggregated_version(request.headers.get("Accept", ""))
    if segments in (["api"], ["apis"]) and aggregated:
        return _json(discovery.aggregated(segments == ["api"], aggregated), discovery.content_type(aggregated))
    if segments == ["api"]:
        return _json(discovery.api_versions(request.host))
    if segments == ["apis"]:
        return _json(discovery.api_group_list())
    if segments == ["api", "v1"]:
        return _json(discovery.resource_list("", "v1") or {})
    if len(segments) == 2:
        group = discovery.api_group(segments[1])
        if group is None:
            raise ApiError(404, "the server could not find the requested resource")
        return _json(group)
    if segments[0] == "apis" and len(segments) == 3:
        listing = discovery.resource_list(segments[1], segments[2])
        if listing is None:
            raise ApiError(404, "the server could not find the requested resource")
        return _json(listing)
    return None


def _resource_word(kind: str) -> str:
    registered = kinds.named(kind)
    return registered.plural if registered else kind.lower()


def _group(kind: str) -> str:
    registered = kinds.named(kind)
    return registered.group if registered else ""


def _json(value: dict[str, Any], content_type: str = "application/json") -> web.Response:
    return web.Response(body=json.dumps(value).encode(), headers={"Content-Type": content_type})


def _status(err: ApiError) -> web.Response:
    return web.Response(body=json.dumps(err.status()).encode(), status=err.code, content_type="application/json",
                        headers={"Cache-Control": NO_CACHE})


def serve(store: Store, options: ServerOptions, stop: threading.Event) -> None:
    asyncio.run(_serve(store, options, stop))


async def _serve(store: Store, options: ServerOptions, stop: threading.Event) -> None:
    runner = web.AppRunner(make_app(store, kubelet_context=kubelet_tls(options)), access_log=None,
                           handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    context = tls_context(options)
    sockets = [socket.socket(fileno=fd) for fd in options.listen_fds]
    for host, port in options.listen:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sockets.append(sock)
    for sock in sockets:
        sock.listen(1024)
        await web.SockSite(runner, sock, ssl_context=context).start()
    log.info("serving the Kubernetes API on %s", ", ".join(_address(s) for s in sockets))
    while not stop.is_set():
        await asyncio.sleep(0.2)
    await runner.cleanup()


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"
