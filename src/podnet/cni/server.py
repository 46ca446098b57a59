"""The agent side of the plugin socket: decode a relayed invocation, run it, answer."""

from __future__ import annotations

import logging
import os
import socketserver
import threading
import time
from pathlib import Path

from podnet.cni import cleanup
from podnet.cni.dispatch import handle
from podnet.cni.entry import socket_path_for
from podnet.observe.metrics import AGENT

log = logging.getLogger("podnet.cni")


def decode_request(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, rest = data.partition(b"\n")
    plugin, env_length, stdin_length = head.split(b"\0")
    env_bytes, stdin = rest[: int(env_length)], rest[int(env_length): int(env_length) + int(stdin_length)]
    env = dict(item.decode().split("=", 1) for item in env_bytes.split(b"\0") if b"=" in item)
    return plugin.decode(), env, stdin


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        data = self.rfile.read()
        plugin, env, stdin = decode_request(data)
        started = time.perf_counter()
        code, output = handle(plugin, env, stdin, self.server.janitor)  # type: ignore[attr-defined]
        took = time.perf_counter() - started
        log.info("%s %s %s %s -> %d in %.1f ms", plugin, env.get("CNI_COMMAND"), env.get("CNI_CONTAINERID", ""),
                 env.get("CNI_IFNAME", ""), code, took * 1000)
        AGENT.cni_took(env.get("CNI_COMMAND", "?"), "success" if code == 0 else "error", took)
        self.wfile.write(b"%d\n" % code + output)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    janitor: cleanup.Janitor


class CniServer:
    """Serves plugin invocations on a unix socket that only root can open."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or Path(socket_path_for("/proc/self/ns/net"))
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        old_umask = os.umask(0o177)  # the socket is created 0600, never briefly wider
        try:
            self._server = _Server(str(self.path), _Handler)
        finally:
            os.umask(old_umask)
        self._server.janitor = cleanup.Janitor(self.path.with_suffix(".pending"))
        self._thread = threading.Thread(target=self._server.serve_forever, name="cni-server", daemon=True)

    def start(self) -> CniServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)
