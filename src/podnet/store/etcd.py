"""The store on etcd v3, through its JSON gateway (HTTP, keys and values in
base64): the same contract as SQLite, with etcd as the arbiter of revisions, so
several machines share one cluster state as Calico and flannel share theirs.

Requests go to the first endpoint that answers; a member that is down or cut off
is skipped, so a three-member cluster keeps serving while one is gone. Given a
network namespace, every connection is made from inside it (a lab's etcd lives
in the lab's namespaces, out of the machine's own network's reach).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

from podnet.kernel import netns
from podnet.store import tls
from podnet.store.base import Compacted, Entry, Event, Store, StoreError
from podnet.store.tls import TlsFiles

WATCH_QUIET = 0.2  # seconds without a watch message after which the history sent so far is all there is
WATCH_IDLE = 5.0  # a held watch stream quiet this long is opened again (and stop looked at)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _text(data: str) -> str:
    return base64.b64decode(data).decode()


def _prefix_end(prefix: str) -> str:
    """etcd's range end for a prefix: the prefix with its last byte incremented."""
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


def _entry(kv: dict[str, Any]) -> Entry:
    return Entry(_text(kv["key"]), json.loads(_text(kv.get("value", ""))),
                 int(kv.get("create_revision", 0)), int(kv.get("mod_revision", 0)))


def _watched(result: dict[str, Any], revision: int) -> list[Event]:
    """The events of one message of a watch stream that started after `revision`."""
    if int(result.get("compact_revision", 0)):
        raise Compacted(revision, int(result["compact_revision"]) - 1)
    events = []
    for event in result.get("events", []):
        kv = event["kv"]
        deleted = event.get("type") == "DELETE"
        events.append(Event("DELETE" if deleted else "PUT", _text(kv["key"]),
                            None if deleted else json.loads(_text(kv.get("value", ""))), int(kv["mod_revision"])))
    return events


class _Connection(http.client.HTTPConnection):
    """An HTTP connection whose socket is made in a given network namespace, over
    TLS when given a context."""

    def __init__(self, host: str, port: int, timeout: float, ns_path: str | None,
                 context: ssl.SSLContext | None = None) -> None:
        super().__init__(host, port, timeout=timeout)
        self.ns_path = ns_path
        self.context = context

    def connect(self) -> None:
        address, timeout = (self.host, self.port), self.timeout
        if self.ns_path is None:
            sock = socket.create_connection(address, timeout)
        else:
            sock = netns.run_in_path(self.ns_path, socket.create_connection, address, timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = tls.wrap(sock, self.context, self.host) if self.context else sock


class EtcdStore(Store):
    def __init__(self, endpoints: list[tuple[str, int]], ns_path: str | None = None, timeout: float = 2.0,
                 tls: TlsFiles | None = None) -> None:
        if not endpoints:
            raise StoreError("an etcd store needs at least one endpoint")
        self.endpoints = endpoints
        self.ns_path = ns_path
        self.context = tls.context() if tls else None
        self.timeout = timeout
        self._local = threading.local()  # a connection per thread: http.client's are not shared
        self._preferred = 0  # the member that answered last, for every thread (a dead one is tried last)

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _connection(self, endpoint: tuple[str, int]) -> http.client.HTTPConnection:
        current = getattr(self._local, "connection", None)
        if current is not None and (current.host, current.port) == endpoint:
            return current
        if current is not None:
            current.close()
        self._local.connection = _Connection(*endpoint, self.timeout, self.ns_path, self.context)
        return self._local.connection  # type: ignore[no-any-return]

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the first member that answers, starting with the one that last did."""
        start = self._preferred
        failures = []
        hung_up = 0  # members that took the connection and closed or reset it unanswered: a TLS listener, to plain HTTP
        tls_ended: ssl.SSLError | None = None  # the last member that ended TLS unanswered
        tls_hung_up = 0  # ...and how many did: all of them is a refusal of this client (no certificate), not an outage
        for offset in range(len(self.endpoints)):
            index = (start + offset) % len(self.endpoints)
            connection = self._connection(self.endpoints[index])
            try:
                connection.request("POST", f"/v3/{path}", json.dumps(body), {"Content-Type": "application/json"})
                response = connection.getresponse()
                body = response.read()
                if self.context is None and tls.PLAIN_TO_TLS in body:
                    raise tls.speaks_tls(self.endpoints[index][0])
                data = json.loads(body or b"{}")
            except ssl.SSLError as err:
                if isinstance(err, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):  # a member gone: try the next
                    connection.close()
                    tls_ended, tls_hung_up = err, tls_hung_up + 1
                    failures.append(f"{self.endpoints[index][0]}:{self.endpoints[index][1]}: {err}")
                    continue
                connection.close()
                raise tls.refused(self.endpoints[index][0], err) from None
            except (OSError, http.client.HTTPException, ValueError) as err:
                connection.close()
                hung_up += isinstance(err, ConnectionResetError)  # http.client.RemoteDisconnected is one
                failures.append(f"{self.endpoints[index][0]}:{self.endpoints[index][1]}: {err}")
                continue
            if response.status != 200:
                failures.append(f"{path}: {data.get('error') or data.get('message') or response.status}")
                if response.status < 500:
                    break
                continue
            self._preferred = index
            return data  # type: ignore[no-any-return]
        if self.context is None and hung_up == len(self.endpoints):
            raise tls.speaks_tls(", ".join(host for host, _ in self.endpoints))
        if tls_ended is not None and tls_hung_up == len(self.endpoints):
            raise tls.refused(", ".join(host for host, _ in self.endpoints), tls_ended)
        raise StoreError(f"etcd: {'; '.join(failures)}")

    def revision(self) -> int:
        return int(self._call("kv/range", {"key": _b64("\0"), "count_only": True})["header"]["revision"])

    def get(self, key: str) -> Entry | None:
        kvs = self._call("kv/range", {"key": _b64(key)}).get("kvs", [])
        return _entry(kvs[0]) if kvs else None

    def list(self, prefix: str) -> tuple[list[Entry], int]:
        answer = self._call("kv/range", {"key": _b64(prefix), "range_end": _prefix_end(prefix)})
        return [_entry(kv) for kv in answer.get("kvs", [])], int(answer["header"]["revision"])

    def put(self, key: str, value: dict[str, Any]) -> int:
        answer = self._call("kv/put", {"key": _b64(key), "value": _b64(json.dumps(value, sort_keys=True))})
        return int(answer["header"]["revision"])

    def delete(self, key: str) -> int | None:
        answer = self._call("kv/deleterange", {"key": _b64(key)})
        return int(answer["header"]["revision"]) if int(answer.get("deleted", 0)) else None

    def compare_and_swap(self, key: str, value: dict[str, Any] | None, expected_revision: int) -> int | None:
        if value is None and expected_revision == 0:
            return None  # deleting what must not exist: nothing to do, as in every backend
        then = ({"request_delete_range": {"key": _b64(key)}} if value is None else
                {"request_put": {"key": _b64(key), "value": _b64(json.dumps(value, sort_keys=True))}})
        answer = self._call("kv/txn", {
            "compare": [{"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(expected_revision)}],
            "success": [then]})
        return int(answer["header"]["revision"]) if answer.get("succeeded") else None

    def compact(self, revision: int) -> None:
        self._call("kv/compaction", {"revision": str(revision), "physical": True})

    def watch(self, prefix: str, revision: int, stop: threading.Event, poll: float = 0.05) -> Iterator[Event]:
        """One held watch stream, as etcd's own clients watch: each event comes as
        it is written, not at a next look. A stream that breaks, or stays quiet
        for WATCH_IDLE, is opened again after the last revision seen, on the
        next member if this one is away."""
        index = self._preferred
        while not stop.is_set():
            connection = _Connection(*self.endpoints[index], self.timeout, self.ns_path, self.context)
            try:
                connection.request("POST", "/v3/watch", json.dumps({"create_request": {
                    "key": _b64(prefix), "range_end": _prefix_end(prefix), "start_revision": str(revision + 1)}}))
                response = connection.getresponse()
                connection.sock.settimeout(WATCH_IDLE)  # type: ignore[union-attr]
                while not stop.is_set():
                    line = response.readline()
                    if not line:
                        break
                    for event in _watched(json.loads(line).get("result", {}), revision):
                        revision = event.revision
                        yield event
            except (TimeoutError, socket.timeout):
                pass  # quiet: open it again
            except (OSError, http.client.HTTPException, ValueError):
                index = (index + 1) % len(self.endpoints)
                stop.wait(poll)
            finally:
                connection.close()

    def events_since(self, prefix: str, revision: int) -> list[Event]:
        """From a watch that starts after `revision`: etcd sends the history at once,
        then waits; WATCH_QUIET of silence (or reaching the store's revision) ends it."""
        current = self.revision()
        if current <= revision:
            return []
        connection = _Connection(*self.endpoints[self._preferred], self.timeout, self.ns_path, self.context)
        events: list[Event] = []
        try:
            connection.request("POST", "/v3/watch", json.dumps({"create_request": {
                "key": _b64(prefix), "range_end": _prefix_end(prefix), "start_revision": str(revision + 1)}}))
            response = connection.getresponse()
            connection.sock.settimeout(WATCH_QUIET)  # type: ignore[union-attr]
            while True:
                try:
                    line = response.readline()
                except (TimeoutError, socket.timeout):
                    break
                if not line:
                    break
                events += _watched(json.loads(line).get("result", {}), revision)
                if events and events[-1].revision >= current:
                    break
        except (OSError, http.client.HTTPException) as err:
            raise StoreError(f"etcd watch: {err}") from err
        finally:
            connection.close()
        return events
