"""The node agent's own HTTP endpoint, on loopback in the node's namespace (as
kube-proxy serves its metrics on 127.0.0.1:10249): /flows for `podnet observe`
and the web view, /metrics for Prometheus, /healthz."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qs, urlparse

from podnet.observe.flows import FlowLog

ADDRESS = ("127.0.0.1", 10249)


class Recorder(Protocol):
    """The flow recorder as its endpoint shows it."""

    flows: FlowLog
    restarts: int
    failure: str | None

    @property
    def recording(self) -> bool: ...


class ObserveServer:
    def __init__(self, node: str, recorder: Recorder, metrics: Callable[[], bytes] | None = None,
                 address: tuple[str, int] = ADDRESS) -> None:
        self.node = node
        self.recorder = recorder
        self.flows = recorder.flows
        self.metrics = metrics
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urlparse(self.path)
                status, kind, body = server.page(url.path, parse_qs(url.query))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:  # the agent's log is for the network, not for requests
                pass

        self._http = ThreadingHTTPServer(address, Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, name="observe-server", daemon=True)

    def page(self, path: str, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        if path == "/flows":
            since = int((query.get("since") or ["0"])[0])
            limit = int((query.get("limit") or ["0"])[0]) or None
            found = self.flows.since(since, limit)
            body = {"node": self.node, "recorded": self.flows.recorded, "lost": self.flows.lost,
                    "evicted": self.flows.evicted, "overruns": self.flows.overruns, "merged": self.flows.merged,
                    "recording": self.recorder.recording, "restarts": self.recorder.restarts,
                    "failure": self.recorder.failure,
                    "flows": [{"number": number, **flow.to_json()} for number, flow in found]}
            return 200, "application/json", json.dumps(body).encode()
        if path == "/metrics" and self.metrics is not None:
            return 200, "text/plain; version=0.0.4", self.metrics()
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        return 404, "text/plain", b"not found\n"

    def start(self) -> ObserveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
