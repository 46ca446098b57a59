"""The kubelet's streaming paths and what each does with a request: check its
parameters, ask the runtime (whose refusals become the answer's status), then
upgrade the connection to the protocol the client asked for, as the kubelet
negotiates it.

    /exec/{namespace}/{pod}/{container}?command=..&input=1&output=1&error=1&tty=1
    /attach/{namespace}/{pod}/{container}?input=1&output=1&error=1&tty=1
    /portForward/{namespace}/{pod}           (WebSocket: ?port=80&port=443)
    /containerLogs/{namespace}/{pod}/{container}?follow=true&tailLines=..
    /healthz"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

from podnet.streaming import channels, portforward, remotecommand
from podnet.streaming.attach import AttachJob
from podnet.streaming.channels import ChannelConnection, TunnelTransport
from podnet.streaming.exec import ExecJob
from podnet.streaming.http1 import HttpConnection, Refusal, Request
from podnet.streaming.remotecommand import CommandOptions, Job
from podnet.streaming.runtime import ContainerRuntime, LogOptions, StreamError
from podnet.streaming.transport import Replayed
from podnet.streaming.websocket import WebSocketConnection, accept_headers, negotiate


@dataclass(frozen=True)
class Call:
    runtime: ContainerRuntime
    http: HttpConnection
    request: Request
    args: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    arity: int  # path segments after the route's name
    handle: Callable[[Call], bool]  # True once the connection has been handed to another protocol


def exec_command(call: Call) -> bool:
    command = call.request.query.get("command", [])
    if not command:
        raise Refusal(400, "you must specify at least one command for the container")
    options = _options(call.request)
    target = call.runtime.exec_target(*call.args)
    return _serve_command(call, options, ExecJob(target, command))


def attach(call: Call) -> bool:
    options = _options(call.request)
    attachment = call.runtime.attach(*call.args)
    upgraded = False
    try:
        upgraded = _serve_command(call, options, AttachJob(attachment))
    finally:
        if not upgraded:
            attachment.close()
    return upgraded


def port_forward(call: Call) -> bool:
    namespace, pod = call.args
    forwarder = portforward.Forwarder(call.runtime.pod_netns(namespace, pod), f"{namespace}/{pod}")
    request = call.request
    if request.upgrade == "websocket":
        offered = request.values("sec-websocket-protocol")
        if channels.PORT_FORWARD_TUNNEL in offered:
            portforward.serve_spdy(TunnelTransport(_websocket(call, channels.PORT_FORWARD_TUNNEL)), forwarder)
            return True
        ports = _ports(request)
        name = negotiate(offered, channels.PORT_FORWARD_PROTOCOLS)
        connection = ChannelConnection(_websocket(call, name), channels.protocol(name))
        portforward.serve_websocket(connection, forwarder, ports)
        return True
    portforward.serve_spdy(_spdy(call, (portforward.PROTOCOL,))[0], forwarder)
    return True


def container_logs(call: Call) -> bool:
    chunks = iter(call.runtime.logs(*call.args, _log_options(call.request)))
    try:
        first = next(chunks, b"")  # the runtime's refusals come before any output: they are still a status
        call.http.stream("text/plain", _until_refused(itertools.chain((first,), chunks)))
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # a follow the client left stops reading the files
    return False


def healthz(call: Call) -> bool:
    call.http.respond(200, "ok")
    return False


ROUTES = {
    "exec": Route(frozenset({"GET", "POST"}), 3, exec_command),
    "attach": Route(frozenset({"GET", "POST"}), 3, attach),
    "portForward": Route(frozenset({"GET", "POST"}), 2, port_forward),
    "containerLogs": Route(frozenset({"GET"}), 3, container_logs),
    "healthz": Route(frozenset({"GET"}), 0, healthz),
}


def find(request: Request) -> tuple[Route, tuple[str, ...]]:
    """The route a request's path names, and its path parameters; Refusal(404 or 405)."""
    segments = [unquote(segment) for segment in request.path.split("/")[1:]]
    route = ROUTES.get(segments[0]) if segments else None
    if route is None or len(segments) - 1 != route.arity or not all(segments[1:]):
        raise Refusal(404, "404 page not found")
    if request.method not in route.methods:
        raise Refusal(405, "405: Method Not Allowed")
    return route, tuple(segments[1:])


def _serve_command(call: Call, options: CommandOptions, job: Job) -> bool:
    if call.request.upgrade == "websocket":
        name = negotiate(call.request.values("sec-websocket-protocol"), channels.EXEC_PROTOCOLS)
        remotecommand.serve_websocket(ChannelConnection(_websocket(call, name), channels.protocol(name)), options, job)
    else:
        transport, protocol = _spdy(call, remotecommand.SPDY_PROTOCOLS)
        remotecommand.serve_spdy(transport, protocol, options, job)
    return True


def _websocket(call: Call, protocol: str) -> WebSocketConnection:
    headers = accept_headers(call.request.header("sec-websocket-key"), call.request.header("sec-websocket-version"),
                             protocol)
    return WebSocketConnection(call.http.transport, call.http.switch_protocols(headers))


def _spdy(call: Call, supported: tuple[str, ...]) -> tuple[Replayed, str]:
    """Negotiate as httpstream.Handshake does, then switch to SPDY/3.1."""
    offered = call.request.values("x-stream-protocol-version")
    if not offered:
        raise Refusal(400, "unable to upgrade: X-Stream-Protocol-Version is required")
    chosen = next((name for name in offered if name in supported), None)
    if chosen is None:
        raise Refusal(403, f"unable to upgrade: unable to negotiate protocol: client supports {_go_list(offered)}, "
                      f"server accepts {_go_list(list(supported))}",
                      tuple(("X-Accepted-Stream-Protocol-Versions", name) for name in supported))
    if call.request.upgrade != "spdy/3.1":
        raise Refusal(400, "unable to upgrade: missing upgrade headers in request")
    leftover = call.http.switch_protocols([("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                                           ("X-Stream-Protocol-Version", chosen)])
    return Replayed(call.http.transport, leftover), chosen


def _options(request: Request) -> CommandOptions:
    try:
        return CommandOptions.from_request(request)
    except ValueError as err:
        raise Refusal(400, str(err)) from None


def _ports(request: Request) -> list[int]:
    texts = [port for name in ("port", "ports") for value in request.query.get(name, []) for port in value.split(",")]
    if not texts:
        raise Refusal(400, 'query parameter "port" is required')
    try:
        return [portforward.parse_port(text) for text in texts]
    except ValueError as err:
        raise Refusal(400, f"unable to parse port: {err}") from None


def _log_options(request: Request) -> LogOptions:
    def flag(name: str) -> bool:
        text = request.param(name)
        if text is None or text == "":
            return False
        if text not in _BOOLEANS:
            raise Refusal(400, f'invalid {name} "{text}": must be true or false')
        return _BOOLEANS[text]

    def number(name: str, least: int) -> int | None:
        text = request.param(name)
        if text is None or text == "":
            return None
        if not text.lstrip("-").isdigit() or int(text) < least:
            raise Refusal(400, f'invalid {name} "{text}": must be an integer of at least {least}')
        return int(text)

    def moment(name: str) -> datetime | None:
        text = request.param(name)
        if not text:
            return None
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise Refusal(400, f'invalid {name} "{text}": must be an RFC 3339 time') from None

    return LogOptions(follow=flag("follow"), tail_lines=number("tailLines", 0), since_seconds=number("sinceSeconds", 1),
                      timestamps=flag("timestamps"), previous=flag("previous"), limit_bytes=number("limitBytes", 1),
                      since_time=moment("sinceTime"))


_BOOLEANS = {text: value for value, texts in ((True, ("1", "t", "T", "true", "TRUE", "True")),
                                               (False, ("0", "f", "F", "false", "FALSE", "False"))) for text in texts}


def _until_refused(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Once the body has begun, a refusal can only cut it short."""
    try:
        yield from chunks
    except StreamError as err:
        raise ConnectionError(f"the log stream ended early: {err.message}") from None


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"
