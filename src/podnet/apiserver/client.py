"""A small client of the Kubernetes API, for podnet's own verbs: paths from the
Kind registry, JSON in and out, Tables on request, watches as a stream of
events, and the server's refusals (Status) as the one line kubectl prints.

It speaks HTTPS with the standard library only (http.client and ssl), over one
kept-alive connection, so a command that asks once starts as fast as one that
read the store: no aiohttp, no YAML (the credentials are PEM files, as a
kubeconfig's are, given by path).
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from podnet.errors import PodnetError
from podnet.model.kinds import Kind

JSON = "application/json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"  # what kubectl get asks for
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
USER_AGENT = "podnet"  # the field manager the server records for podnet's writes
TIMEOUT = 30.0  # seconds a request may take; a watch waits as long as it is open
STRICT = {"fieldValidation": "Strict"}  # kubectl's default for what it creates and replaces
STREAM_PIECE = 64 * 1024  # the most of a streamed body handed on at once
UNAUTHORIZED = "the server has asked for the client to provide credentials"  # client-go's words for a 401


@dataclass(frozen=True)
class Endpoint:
    """Where the API answers and who the client is: the cluster's CA, and a client
    certificate and key (PEM files)."""

    address: str  # host:port
    ca_file: str
    cert_file: str
    key_file: str


class ServerError(PodnetError):
    """The server refused: its Status, with kubectl's heading for it."""

    def __init__(self, status: Mapping[str, Any]) -> None:
        self.status = status
        self.code = int(status.get("code") or 0)
        self.reason = str(status.get("reason") or "")
        self.heading, message = kubectl_words(status)
        super().__init__(message)


class Unreachable(PodnetError):
    """No answer at all: nothing listens, or the connection broke."""


def kubectl_words(status: Mapping[str, Any]) -> tuple[str, str]:
    """The heading and the message kubectl prints for a Status (its CheckErr):
    `Error from server (NotFound): pods "x" not found`; an Invalid object as
    `The Pod "x" is invalid: <field>: <problem>`; a 401 as a request to log in."""
    reason, message = str(status.get("reason") or ""), str(status.get("message") or "")
    details = status.get("details") or {}
    if reason == "Unauthorized":
        return "error", f"You must be logged in to the server ({UNAUTHORIZED})"
    if reason == "Invalid":
        causes = [f"{c['field']}: {c.get('message', '')}" if c.get("field") else str(c.get("message", ""))
                  for c in details.get("causes") or []]
        heading = (f'The {details.get("kind", "")} "{details.get("name", "")}" is invalid'
                   if details.get("kind") or details.get("name") else "The request is invalid")
        if not causes:
            return heading, message
        return heading, causes[0] if len(causes) == 1 else f"[{', '.join(causes)}]"
    return (f"Error from server ({reason})" if reason else "Error from server"), message


def path(kind: Kind, namespace: str | None = None, name: str = "", subresource: str = "") -> str:
    """The URL path of a kind's collection (every namespace's, when namespace is
    None), of one object, or of one of its subresources."""
    parts = ["/apis", kind.group, kind.version] if kind.group else ["/api", kind.version]
    if kind.namespaced and namespace is not None:
        parts += ["namespaces", quote(namespace, safe="")]
    parts.append(kind.plural)
    if name:
        parts.append(quote(name, safe=""))
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


class ApiClient:
    """Requests to one API server, over one connection kept open between them."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._context = ssl.create_default_context(cafile=endpoint.ca_file)
        self._context.load_cert_chain(endpoint.cert_file, endpoint.key_file)
        self._connection: http.client.HTTPSConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self, timeout: float | None) -> http.client.HTTPSConnection:
        host, port = self.endpoint.address.rsplit(":", 1)
        return http.client.HTTPSConnection(host.strip("[]"), int(port), context=self._context, timeout=timeout)

    def request(self, method: str, url: str, query: Mapping[str, str] | None = None, body: Any = None,
                content_type: str = JSON, accept: str = JSON) -> dict[str, Any]:
        """The answer's JSON object; a refusal raises ServerError. A kept
        connection the server has since closed is opened again, once."""
        target = url + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            reused = self._connection is not None
            if self._connection is None:
                self._connection = self._connect(TIMEOUT)
            try:
                self._connection.request(method, target, payload, headers)
                response = self._connection.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as err:
                self.close()
                if not reused or attempt == 2:
                    raise self._unreachable(err) from None
            except (OSError, http.client.HTTPException) as err:
                self.close()
                raise self._unreachable(err) from None
        return _answer(response.status, data)

    def _unreachable(self, err: Exception) -> Unreachable:
        why = "was refused" if isinstance(err, ConnectionRefusedError) else f"failed ({err or type(err).__name__})"
        return Unreachable(f"the connection to the server {self.endpoint.address} {why}; is the lab's API server up?")

    def get(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any]:
        return self.request("GET", path(kind, namespace, name))

    def list(self, kind: Kind, namespace: str | None, **selectors: str) -> dict[str, Any]:
        """A List; selectors are the query's labelSelector and fieldSelector, when given."""
        return self.request("GET", path(kind, namespace), _selectors(selectors))

    def table(self, kind: Kind, namespace: str | None, name: str = "", **selectors: str) -> dict[str, Any]:
        """The Table of a collection, or of one object, with the server's columns."""
        return self.request("GET", path(kind, namespace, name), _selectors(selectors), accept=TABLE)

    def create(self, kind: Kind, namespace: str | None, document: Mapping[str, Any]) -> dict[str, Any]:
        """An object written whole is decoded strictly, as kubectl asks: an unknown field is refused."""
        return self.request("POST", path(kind, namespace), STRICT, document)

    def replace(self, kind: Kind, namespace: str | None, name: str, document: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PUT", path(kind, namespace, name), STRICT, document)

    def patch(self, kind: Kind, namespace: str | None, name: str, patch: Any, content_type: str = MERGE_PATCH,
              subresource: str = "") -> dict[str, Any]:
        return self.request("PATCH", path(kind, namespace, name, subresource), body=patch, content_type=content_type)

    def delete(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any]:
        """As kubectl deletes: what depends on the object goes after it, in the background."""
        return self.request("DELETE", path(kind, namespace, name),
                            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})

    def watch(self, kind: Kind, namespace: str | None, resource_version: str, table: bool = False,
              timeout_seconds: float | None = None, **selectors: str) -> Iterator[dict[str, Any]]:
        """The events after resource_version ("0": what exists first, as ADDED),
        until the server ends the watch (after timeout_seconds, when given). It
        holds a connection of its own, so other requests go on meanwhile."""
        query = {"watch": "true", "resourceVersion": resource_version, **_selectors(selectors)}
        if timeout_seconds is not None:
            query["timeoutSeconds"] = str(max(int(timeout_seconds), 1))
        connection = self._connect(None if timeout_seconds is None else timeout_seconds + TIMEOUT)
        try:
            try:
                connection.request("GET", f"{path(kind, namespace)}?{urlencode(query)}",
                                   headers={"Accept": TABLE if table else JSON, "User-Agent": USER_AGENT})
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as err:
                raise self._unreachable(err) from None
            if response.status >= 400:
                _answer(response.status, response.read())
            while line := response.readline():
                if line.strip():
                    yield json.loads(line)
        finally:
            connection.close()

    def stream(self, url: str, query: Mapping[str, str] | None = None, timeout: float | None = TIMEOUT,
               accept: str = "*/*") -> Iterator[bytes]:
        """The answer's body in pieces as they arrive (a pod's log, followed for
        as long as the server sends it), over a connection of its own; timeout
        (None: none) bounds each wait for the next piece. A refusal raises
        ServerError before any piece."""
        connection = self._connect(timeout)
        try:
            try:
                connection.request("GET", url + (f"?{urlencode(query)}" if query else ""),
                                   headers={"Accept": accept, "User-Agent": USER_AGENT})
                response = connection.getresponse()
                if response.status >= 400:
                    _answer(response.status, response.read())
                while piece := response.read1(STREAM_PIECE):
                    yield piece
            except (OSError, http.client.HTTPException) as err:
                raise self._unreachable(err) from None
        finally:
            connection.close()


def _selectors(given: Mapping[str, str]) -> dict[str, str]:
    names = {"label_selector": "labelSelector", "field_selector": "fieldSelector"}
    return {names[key]: value for key, value in given.items() if value}


def _answer(code: int, data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data) if data else {}
    except ValueError:
        value = None
    if code < 400:
        if not isinstance(value, dict):
            raise ServerError({"code": code, "reason": "InternalError",
                               "message": f"the server answered with what is not a JSON object: {data[:80]!r}"})
        return value
    if isinstance(value, dict) and value.get("kind") == "Status":
        raise ServerError(value)
    raise ServerError({"code": code, "reason": http.client.responses.get(code, "").replace(" ", ""),
                       "message": data.decode(errors="replace").strip() or f"the server answered {code}"})
