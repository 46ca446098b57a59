"""The DHCP daemon: holds every container interface's lease, as the reference's
`dhcp daemon` does, and answers the podnet-dhcp plugin over a unix socket (one
JSON request and one JSON answer per connection).

Leases are keyed by the reference's client identifier, containerID/network/ifname,
so an ADD repeated for the same attachment gets the lease it already has. Each is
recorded in the state directory (its terms and the server's ACK, as it came), so
a daemon restarted, for an upgrade say, keeps renewing what the last one held;
the reference's daemon forgets its leases, and they lapse unrenewed."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import socketserver
import threading
import time
from pathlib import Path
from typing import Any

from podnet.ipam.dhcp.lease import Lease, Terms
from podnet.ipam.dhcp.wire import DEFAULT_REQUESTS, option_number, parse
from podnet.errors import PodnetError

log = logging.getLogger("podnet.ipam.dhcp")


def client_id(container_id: str, network: str, ifname: str) -> str:
    """The reference plugin's: RFC 2132 allows at most 255 octets, the type byte one of them."""
    return f"{container_id}/{network}/{ifname}"[:254]


def lease_options(ipam: dict[str, Any], args: dict[str, str]) -> tuple[tuple[int, ...], tuple[tuple[int, bytes], ...]]:
    """ipam.request (options to ask for; the defaults unless one says skipDefault)
    and ipam.provide (options to send, a value or a CNI_ARGS key's), as the
    reference plugin reads them."""
    requests: list[int] = []
    skip_default = False
    for entry in ipam.get("request") or ():
        skip_default = skip_default or bool(entry.get("skipDefault"))
        requests.append(option_number(entry["option"]))
    if not skip_default:
        requests += [number for number in DEFAULT_REQUESTS if number not in requests]
    provides: dict[int, bytes] = {}
    for entry in ipam.get("provide") or ():
        number = option_number(entry["option"])
        value = args.get(entry.get("fromArg") or "") or entry.get("value") or ""
        if len(value) > 255:
            raise ValueError(f"the value for option {entry['option']} is longer than 255 bytes")
        if value:
            provides[number] = value.encode()
    return tuple(requests), tuple(provides.items())


def cni_result(lease: Lease) -> dict[str, Any]:
    ack = lease.ack
    assert ack is not None
    ip: dict[str, Any] = {"address": str(ack.interface)}
    if ack.gateway:
        ip["gateway"] = ack.gateway
    return {"ips": [ip], "routes": [{"dst": dst, **({"gw": gw} if gw else {})} for dst, gw in ack.routes],
            "dns": {}}


class DhcpDaemon:
    def __init__(self, timeout: float = 10.0, state: Path | None = None) -> None:
        self.timeout = timeout
        self.state = state
        self.leases: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._acquiring: dict[str, threading.Lock] = {}

    # The records of leases held, for the next daemon.

    def _record(self, key: str) -> Path | None:
        return self.state / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json" if self.state else None

    def _save(self, lease: Lease) -> None:
        path = self._record(lease.name)
        if path is None or lease.ack is None:
            return
        terms = lease.terms
        record = {"clientID": terms.client_id, "netns": terms.ns_path, "ifName": terms.ifname,
                  "requests": list(terms.requests), "provides": [[n, v.hex()] for n, v in terms.provides],
                  "ack": lease.ack.frame.hex(), "acquired": time.time() - (time.monotonic() - lease.acquired_at)}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)

    def _forget(self, key: str) -> None:
        path = self._record(key)
        if path is not None:
            path.unlink(missing_ok=True)

    def adopt(self) -> int:
        """The leases the last daemon recorded, kept on where their interfaces still
        are; the records of the others go. Returns how many were adopted."""
        if self.state is None:
            return 0
        self.state.mkdir(parents=True, exist_ok=True)
        for path in self.state.glob("*.json"):
            try:
                record = json.loads(path.read_text())
                ack = parse(bytes.fromhex(record["ack"]))
                terms = Terms(record["clientID"], record["netns"], record["ifName"], tuple(record["requests"]),
                              tuple((n, bytes.fromhex(v)) for n, v in record["provides"]), self.timeout)
                if ack is None or not os.path.exists(terms.ns_path):
                    raise ValueError("its namespace is gone")
                lease = Lease(terms, on_expiry=self._expired, on_commit=self._save)
                lease.resume(ack, max(0.0, time.time() - float(record["acquired"])))
            except (OSError, ValueError, KeyError, TypeError, PodnetError) as err:
                log.info("%s: not adopted (%s)", path.name, err)
                path.unlink(missing_ok=True)
                continue
            lease.start()
            self.leases[terms.client_id] = lease
            log.info("%s: adopted the lease of %s", terms.client_id, ack.address)
        return len(self.leases)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """allocate | release | check | gc | status; an error comes back as {"error": ...}."""
        method = request.get("method")
        try:
            if method == "status":
                return {"leases": len(self.leases)}
            if method == "gc":
                return {"released": self.gc(request)}
            key = client_id(request["containerID"], request["network"], request["ifName"])
            if method == "allocate":
                return self.allocate(key, request)
            if method == "release":
                return {"released": self.release(key)}
            if method == "check":
                lease = self.leases.get(key)
                if lease is None:
                    return {"error": f"no DHCP lease is held for {key}"}
                return cni_result(lease)
            return {"error": f"unknown method {method!r}"}
        except (PodnetError, ValueError, KeyError) as err:
            return {"error": str(err) if not isinstance(err, KeyError) else f"the request lacks {err}"}

    def allocate(self, key: str, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            gate = self._acquiring.setdefault(key, threading.Lock())
        with gate:  # one acquisition per attachment at a time; the others get its lease
            lease = self.leases.get(key)
            if lease is None:
                requests, provides = lease_options(request.get("ipam") or {}, request.get("args") or {})
                lease = Lease(Terms(key, os.path.abspath(request["netns"]), request["ifName"], requests, provides,
                                    self.timeout), on_expiry=self._expired, on_commit=self._save)
                try:
                    lease.acquire()
                except BaseException:
                    with self._lock:
                        self._acquiring.pop(key, None)  # no gate kept for an attachment that holds nothing
                    raise
                lease.start()
                with self._lock:
                    self.leases[key] = lease
            return cni_result(lease)

    def release(self, key: str) -> list[str]:
        with self._lock:
            lease = self.leases.pop(key, None)
            self._acquiring.pop(key, None)
        if lease is None:
            return []
        lease.stop()
        self._forget(key)
        return [lease.ack.address] if lease.ack else []

    def gc(self, request: dict[str, Any]) -> list[str]:
        """Release the leases of the network that no valid attachment holds."""
        network = request["network"]
        valid = {client_id(a["containerID"], network, a["ifname"]) for a in request.get("valid") or ()}
        stale = [key for key in list(self.leases) if key.split("/")[-2:-1] == [network] and key not in valid]
        return [address for key in stale for address in self.release(key)]

    def _expired(self, lease: Lease) -> None:
        with self._lock:
            if self.leases.get(lease.name) is lease:
                del self.leases[lease.name]
        self._forget(lease.name)

    def stop(self) -> None:
        """On shutdown the leases are not released: the containers keep their
        addresses, and the next daemon adopts them from the records."""
        for lease in list(self.leases.values()):
            lease.stop(release=False)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        try:
            request = json.loads(self.rfile.readline())
        except ValueError as err:
            answer: dict[str, Any] = {"error": f"not a JSON request: {err}"}
        else:
            answer = self.server.daemon.handle(request) if isinstance(request, dict) else {"error": "not an object"}
        self.wfile.write(json.dumps(answer).encode() + b"\n")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, daemon: DhcpDaemon) -> None:
        self.daemon = daemon
        super().__init__(path, _Handler)


def serve(socket_path: str, stop: threading.Event, timeout: float = 10.0, state: Path | None = None) -> None:
    """Until stop is set. A socket file left by a daemon that died is replaced; one
    that answers means another daemon runs, and that is an error."""
    path = Path(socket_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(path))
            raise PodnetError(f"a DHCP daemon already answers on {path}")
        except OSError:
            path.unlink()
        finally:
            probe.close()
    daemon = DhcpDaemon(timeout, state)
    daemon.adopt()
    old_umask = os.umask(0o077)  # the socket is root's only, as the agents' are
    try:
        server = _Server(str(path), daemon)
    finally:
        os.umask(old_umask)
    thread = threading.Thread(target=server.serve_forever, name="dhcp-daemon", daemon=True)
    thread.start()
    log.info("DHCP daemon listening on %s", path)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        path.unlink(missing_ok=True)
        daemon.stop()
