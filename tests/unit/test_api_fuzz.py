"""The API server under generated requests (hypothesis): whatever the path,
query string, headers and body, the answer is a `Status` with a 4xx code, or a
2xx for a request that makes sense; never a 500, never a traceback; and a
refused write leaves the store exactly as it was.

Each example gets a fresh copy of one SQLite store holding an object of each
of a few kinds, so it stands on its own and a failure shrinks to one request."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from podnet.api import cluster, verbs
from podnet.apiserver.auth import User, user_of
from podnet.apiserver.server import make_app
from podnet.model import kinds
from podnet.model.manifest import parse_resource
from podnet.store.base import Entry
from podnet.store.sqlite import SqliteStore
from tests.unit.test_manifest_fuzz import VALUES, VALID, paths, replaced

ADMIN = User("kubernetes-admin", ("system:masters",))
VIEWER = User("podnet-viewer", ("podnet:view",))
WRITES = ("POST", "PUT", "PATCH", "DELETE")
DOCUMENTS: dict[str, dict[str, Any]] = {document["kind"]: document for document in VALID} | {
    document["kind"]: document for document in [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "fast"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"}, "type": "Opaque",
         "data": {"key": "c2VjcmV0"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"zone": "a"}},
         "spec": {"podCIDR": "10.244.1.0/24"}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny"},
         "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                  "ingress": [{"ports": [{"port": 80, "protocol": "TCP"}]}]}},
        {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1"}, "reason": "Scheduled",
         "message": "bound", "type": "Normal", "involvedObject": {"kind": "Pod", "name": "web"}},
    ]}
SEEDED = ("Namespace", "Pod", "Service", "Deployment", "ConfigMap", "Node")  # stored before each request
NAMES = ("web", "shop", "settings", "n1", "s", "d", "p", "nope")


def _path_of(kind: kinds.Kind, namespace: str | None, name: str | None = None, sub: str | None = None,
             watch: bool = False) -> str:
    """The URL path of a kind's collection or object, percent-encoded as a client sends it."""
    segments = (["api", "v1"] if not kind.group else ["apis", kind.group, kind.version]) + (["watch"] if watch else [])
    if namespace is not None:
        segments += ["namespaces", namespace]
    segments += [kind.plural, *([name] if name is not None else []), *([sub] if sub is not None else [])]
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # percent-encoded
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    user: User | None = ADMIN


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    streamed: bool  # a watch: JSON lines, read for a moment and then left


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cluster's store with one object of each seeded kind, written as `podnet apply`
    writes; each example gets a copy."""
    path = tmp_path_factory.mktemp("api-fuzz") / "store.db"
    store = SqliteStore(path)
    cluster.save(store, cluster.ClusterConfig("10.244.0.0/16", "10.96.0.0/12", backend="host-gw",
                                              proxy_mode="nftables", iptables_backend="nft"))
    cluster.bootstrap(store)
    for kind in SEEDED:
        verbs.create(store, parse_resource(DOCUMENTS[kind]))
    store.close()
    return path


def _snapshot(store: SqliteStore) -> tuple[int, list[Entry]]:
    return store.revision(), store.list("")[0]


async def _answer(store: SqliteStore, made: Call) -> Answer:
    def authenticate(_request: Any) -> User:
        return made.user if made.user is not None else user_of(None)

    async with TestClient(TestServer(make_app(store, authenticate))) as client:
        url = URL(str(client.make_url("")).rstrip("/") + made.path, encoded=True)  # "//api" too, as sent
        response = await client.session.request(made.method, url, params=list(made.query),
                                        headers=dict(made.headers), data=made.body)
        streamed = response.headers.get("Transfer-Encoding") == "chunked"
        body = b""
        try:
            while chunk := await asyncio.wait_for(response.content.readany(), 0.1 if streamed else 30):
                body += chunk
        except asyncio.TimeoutError:
            assert streamed, f"{made}: no answer in 30 s"
        response.close()
        return Answer(response.status, body, streamed)


def check(template: Path, made: Call) -> Answer:
    """Make the call on a fresh copy of the template store; the answer must be
    sound, and a refused write must have changed nothing."""
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(shutil.copy(template, Path(directory) / "store.db"))
        try:
            before = _snapshot(store)
            answer = asyncio.run(_answer(store, made))
            after = _snapshot(store)
        finally:
            store.close()
    assert answer.status < 500, (made, answer)
    assert b"Traceback" not in answer.body and b'File "/' not in answer.body, answer.body
    if made.method == "HEAD":
        return answer  # no body to look at
    if answer.streamed:
        _check_stream(answer.body)
    elif answer.status >= 400:
        status = json.loads(answer.body)
        assert (status["kind"], status["status"], status["code"]) == ("Status", "Failure", answer.status), status
        assert isinstance(status["message"], str) and status["reason"], status
        if made.method in WRITES:
            assert after == before, (made, answer)
    elif made.path not in ("/healthz", "/livez", "/readyz"):
        json.loads(answer.body)
    return answer


def _check_stream(body: bytes) -> None:
    for line in body.split(b"\n")[:-1]:  # the last is cut where reading stopped
        event = json.loads(line)
        assert event["type"] in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"), event
        if event["type"] == "ERROR":
            assert event["object"]["kind"] == "Status"


# What requests are made of.

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
USERS = st.sampled_from([ADMIN, ADMIN, ADMIN, VIEWER, None])
SUBRESOURCES = st.none() | st.sampled_from(["status", "scale", "log", "exec", "finalize", "", "..", "."]) | TEXT
SEGMENTS = st.sampled_from(["api", "apis", "v1", "v2", "apps", "namespaces", "default", "watch", "status",
                            "scale", "", ".", "..", *sorted(k.plural for k in kinds.KINDS), *NAMES]) | TEXT
QUERY = st.lists(st.tuples(
    st.sampled_from(["watch", "labelSelector", "fieldSelector", "limit", "continue", "resourceVersion",
                     "timeoutSeconds", "allowWatchBookmarks", "fieldManager", "force", "includeObject", "dryRun",
                     "fieldValidation", "propagationPolicy", "gracePeriodSeconds", "resourceVersionMatch"]) | TEXT,
    st.sampled_from(["1", "true", "0", "-1", "abc", "1e9", "inf", "nan", "99999999999999999999", "app=web",
                     "app in (web,x)", "!app", "app notin ()", "a,,b", "metadata.name=p", "spec.nodeName!=n1",
                     "status.phase==Running", "x==", "(", "Object", "Metadata", "None", "Strict", "Foreground",
                     "eyJzdGFydCI6IngiLCJydiI6MX0=", ""]) | TEXT), max_size=4)
ACCEPTS = st.sampled_from([
    "application/json", "application/json;as=Table;v=v1;g=meta.k8s.io", "application/json;as=Table;v=v9;g=meta.k8s.io",
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json", "application/vnd.kubernetes.protobuf",
    "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", "*/*", "text/html", ";;", "application/json;as",
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    "application/json;q=0.5;;=;a=b=c"]) | HEADER_TEXT
CONTENT_TYPES = st.sampled_from([
    "application/json", "application/yaml", "application/json-patch+json", "application/merge-patch+json",
    "application/strategic-merge-patch+json", "application/apply-patch+yaml", "application/json; charset=utf-8",
    "text/plain", ";"]) | HEADER_TEXT
HEADERS = st.fixed_dictionaries({}, optional={"Accept": ACCEPTS, "Content-Type": CONTENT_TYPES,
                                              "User-Agent": HEADER_TEXT}).map(lambda h: tuple(h.items()))
KEYS = st.sampled_from(["metadata", "labels", "annotations", "name", "namespace", "spec", "status", "containers",
                        "image", "ports", "port", "containerPort", "nodePort", "replicas", "selector", "matchLabels",
                        "template", "clusterIP", "type", "data", "finalizers", "resourceVersion", "uid",
                        "generation", "managedFields", "apiVersion", "kind", "$patch", "$retainKeys",
                        "$setElementOrder/containers", "$deleteFromPrimitiveList/finalizers"]) | TEXT
PATCH_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), TEXT,
                                      st.sampled_from(["delete", "replace", "merge", "c", "web", "TCP"])),
                            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                            max_leaves=10)
JSON_PATCHES = st.lists(st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]) | TEXT,
     "path": st.sampled_from(["/metadata/labels/x", "/metadata/name", "/metadata/namespace", "/metadata", "/spec",
                              "/spec/replicas", "/spec/containers/0/image", "/spec/containers/-", "/status",
                              "/metadata/resourceVersion", "/kind", "/apiVersion", "", "/", "/~2"]) | TEXT},
    optional={"value": PATCH_VALUES, "from": st.sampled_from(["/metadata/labels", "/spec", "/x"])}), max_size=3)


@st.composite
def documents(draw: st.DrawFn) -> tuple[kinds.Kind, dict[str, Any]]:
    """A kind and its valid document: as it is, renamed, or with a wrong value put anywhere in it."""
    kind = draw(st.sampled_from(sorted(DOCUMENTS)))
    document = DOCUMENTS[kind]
    change = draw(st.sampled_from(["none", "rename", "value"]))
    if change == "rename":
        document = replaced(document, ("metadata", "name"), draw(st.sampled_from(["fresh", "x-1"]) | TEXT))
    elif change == "value":
        document = replaced(document, draw(st.sampled_from(paths(document)[1:])), draw(VALUES))
    return kinds.named(kind), document


BODIES = st.one_of(st.binary(max_size=200), VALUES.map(lambda v: json.dumps(v).encode()),
                   documents().map(lambda d: json.dumps(d[1]).encode()),
                   documents().map(lambda d: yaml.safe_dump(d[1]).encode()),
                   PATCH_VALUES.map(lambda v: json.dumps(v).encode()),
                   JSON_PATCHES.map(lambda v: json.dumps(v).encode()))


@st.composite
def resource_paths(draw: st.DrawFn, collection: bool | None = None) -> str:
    """A served kind's path: its collection or one object, in a namespace or across them, perhaps a subresource."""
    kind = draw(st.sampled_from(kinds.KINDS))
    namespace = draw(st.sampled_from(["default", "shop", "nope"]) | TEXT) if kind.namespaced and draw(
        st.booleans()) else None
    if collection or (collection is None and draw(st.booleans())):
        return _path_of(kind, namespace, watch=draw(st.booleans()))
    return _path_of(kind, namespace, draw(st.sampled_from(NAMES) | TEXT), draw(SUBRESOURCES))


GARBLED_PATHS = st.lists(SEGMENTS, max_size=7).map(lambda parts: "/" + "/".join(quote(p, safe="") for p in parts))
PATHS = st.one_of(resource_paths(), GARBLED_PATHS, st.sampled_from(
    ["/", "/version", "/healthz", "/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1", "/openapi/v2",
     "/openapi/v3"]))
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# The properties.

def test_the_seeded_objects_are_served_and_a_valid_create_succeeds(template: Path) -> None:
    """The fuzzing below starts from sense: these requests are answered 2xx."""
    for kind in SEEDED:
        registered = kinds.named(kind)
        path = _path_of(registered, "default" if registered.namespaced else None, DOCUMENTS[kind]["metadata"]["name"])
        assert check(template, Call("GET", path)).status == 200
    fresh = json.dumps({**DOCUMENTS["ConfigMap"], "metadata": {"name": "fresh"}}).encode()
    assert check(template, Call("POST", _path_of(kinds.named("ConfigMap"), "default"), body=fresh,
                                headers=(("Content-Type", "application/json"),))).status == 201


@FUZZ
@given(METHODS, PATHS, QUERY, HEADERS, BODIES, USERS)
def test_any_request(template: Path, method: str, path: str, query: Any, headers: Any, body: bytes,
                     user: User | None) -> None:
    check(template, Call(method, path, tuple(query), headers, body, user))


@FUZZ
@given(documents(), st.booleans(), st.sampled_from(["json", "yaml"]), QUERY)
def test_writes_of_objects_right_or_wrong(template: Path, document: tuple[kinds.Kind, dict[str, Any]],
                                          create: bool, form: str, query: Any) -> None:
    """POST to the kind's collection, or PUT to the object, of its document valid or not."""
    kind, body = document
    namespace = "default" if kind.namespaced else None
    path = _path_of(kind, namespace) if create else _path_of(kind, namespace, DOCUMENTS[kind.name]["metadata"]["name"])
    text = json.dumps(body) if form == "json" else yaml.safe_dump(body)
    check(template, Call("POST" if create else "PUT", path, tuple(query), (("Content-Type", f"application/{form}"),),
                         text.encode()))


@FUZZ
@given(st.sampled_from(SEEDED), st.none() | st.sampled_from(["status", "scale"]), CONTENT_TYPES,
       st.one_of(PATCH_VALUES.map(json.dumps), JSON_PATCHES.map(json.dumps),
                 documents().map(lambda d: yaml.safe_dump(d[1])), st.text(max_size=50)),
       st.lists(st.tuples(st.sampled_from(["fieldManager", "force", "fieldValidation"]),
                          st.sampled_from(["kubectl", "true", "Strict", ""]) | TEXT), max_size=2))
def test_patches_of_every_type(template: Path, kind: str, sub: str | None, content_type: str, body: str,
                               query: Any) -> None:
    registered = kinds.named(kind)
    path = _path_of(registered, "default" if registered.namespaced else None, DOCUMENTS[kind]["metadata"]["name"],
                    sub)
    check(template, Call("PATCH", path, tuple(query), (("Content-Type", content_type),), body.encode()))


@FUZZ
@given(resource_paths(collection=True), QUERY, ACCEPTS)
def test_lists_and_watches_with_any_query(template: Path, path: str, query: Any, accept: str) -> None:
    check(template, Call("GET", path, tuple(query), (("Accept", accept),)))


DELETE_OPTIONS = st.fixed_dictionaries({}, optional={
    "kind": st.sampled_from(["DeleteOptions"]) | TEXT, "apiVersion": st.sampled_from(["v1", "meta.k8s.io/v1"]),
    "gracePeriodSeconds": st.none() | st.integers(-5, 10**12) | TEXT | st.floats(allow_nan=False),
    "propagationPolicy": st.sampled_from(["Orphan", "Background", "Foreground"]) | PATCH_VALUES,
    "preconditions": PATCH_VALUES | st.fixed_dictionaries({}, optional={"uid": PATCH_VALUES,
                                                                      "resourceVersion": PATCH_VALUES}),
    "orphanDependents": PATCH_VALUES, "dryRun": PATCH_VALUES})


@FUZZ
@given(st.sampled_from(SEEDED), st.booleans(), st.one_of(DELETE_OPTIONS.map(json.dumps), PATCH_VALUES.map(json.dumps),
                                                        st.just("")), QUERY)
def test_deletes_with_any_options(template: Path, kind: str, one: bool, body: str, query: Any) -> None:
    """DELETE of a seeded object, or of its whole collection, with DeleteOptions right or wrong."""
    registered = kinds.named(kind)
    namespace = "default" if registered.namespaced else None
    path = _path_of(registered, namespace, DOCUMENTS[kind]["metadata"]["name"] if one else None)
    check(template, Call("DELETE", path, tuple(query), (("Content-Type", "application/json"),), body.encode()))


JSON_BODY = (("Content-Type", "application/json"),)
FOUND = {  # what the fuzzing found: each was a 500 or a broken answer, and is now a Status
    "metadata not an object": (Call("POST", "/api/v1/namespaces/default/configmaps", (), JSON_BODY,
                                    b'{"metadata": 1}'), 400),
    "metadata null": (Call("POST", "/api/v1/nodes", (), JSON_BODY, b'{"metadata": null}'), 400),
    "a kind that is a list": (Call("POST", "/api/v1/namespaces/default/events", (), JSON_BODY,
                                   b'{"kind": [null], "metadata": {"name": "e"}}'), 400),
    "timeoutSeconds not a number": (Call("GET", "/api/v1/namespaces", (("watch", "1"), ("timeoutSeconds", "true"))),
                                    400),
    "timeoutSeconds infinite": (Call("GET", "/api/v1/watch/nodes", (("timeoutSeconds", "inf"),)), 400),
    "a Table watch with a wrong includeObject, refused before the stream starts": (
        Call("GET", "/api/v1/watch/namespaces", (("includeObject", "1"),),
             (("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io"),)), 400),
    "a newline in the path": (Call("GET", "/api/v1/namespaces/%0A/pods"), 200),
    "preconditions not an object": (Call("DELETE", "/api/v1/nodes/n1", (), JSON_BODY, b'{"preconditions": 1}'), 400),
    "a Service whose node port is taken keeps no clusterIP": (Call(
        "POST", "/api/v1/namespaces/default/services", (), JSON_BODY, json.dumps(
            {"metadata": {"name": "other"}, "spec": {"type": "NodePort", "clusterIP": "10.96.5.5",
                                                     "ports": [{"port": 80, "nodePort": 30080}]}}).encode()), 400),
}


@pytest.mark.parametrize("made, code", FOUND.values(), ids=FOUND.keys())
def test_what_the_fuzzing_found(template: Path, made: Call, code: int) -> None:
    assert check(template, made).status == code
