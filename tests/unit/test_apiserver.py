"""The API server's HTTP layer over a real SQLite store, with no TLS under it:
the test names the user each request comes from."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from podnet.apiserver.auth import User
from podnet.apiserver.server import make_app
from podnet.store.sqlite import SqliteStore

ADMIN = User("kubernetes-admin", ("system:masters",))
VIEWER = User("podnet-viewer", ("podnet:view",))
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
       "spec": {"containers": [{"name": "echo", "image": "nginx:1.27"}]}}


def served(store: SqliteStore, check: Callable[[TestClient], Awaitable[None]], user: User | None = ADMIN) -> None:
    """Run check against the app, every request made as `user` (None: no certificate)."""
    def authenticate(request: Any) -> User:
        from podnet.apiserver.auth import user_of

        return user if user is not None else user_of(None)

    async def run() -> None:
        async with TestClient(TestServer(make_app(store, authenticate))) as client:
            await check(client)

    asyncio.run(run())


def test_version_discovery_and_no_caching(store: SqliteStore) -> None:
    async def check(client: TestClient) -> None:
        version = await client.get("/version")
        assert (await version.json())["minor"] == "32" and version.headers["Cache-Control"] == "no-cache, private"
        aggregated = await client.get("/apis", headers={
            "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"})
        assert aggregated.headers["Content-Type"].endswith("as=APIGroupDiscoveryList")
        groups = {item["metadata"]["name"] for item in (await aggregated.json())["items"]}
        assert {"apps", "discovery.k8s.io", "networking.k8s.io"} <= groups
        legacy = await (await client.get("/api/v1")).json()
        pods = next(r for r in legacy["resources"] if r["name"] == "pods")
        assert (pods["shortNames"], pods["categories"], pods["namespaced"]) == (["po"], ["all"], True)

    served(store, check)


def test_create_get_list_as_table_and_conflict(store: SqliteStore) -> None:
    async def check(client: TestClient) -> None:
        created = await client.post("/api/v1/namespaces/default/pods", json=POD)
        assert created.status == 201
        pod = await created.json()
        assert pod["metadata"]["uid"] and pod["spec"]["containers"][0]["image"] == "nginx:1.27"
        again = await client.post("/api/v1/namespaces/default/pods", json=POD)
        assert (again.status, (await again.json())["reason"]) == (409, "AlreadyExists")
        table = await (await client.get("/api/v1/namespaces/default/pods", headers={"Accept": TABLE})).json()
        assert table["kind"] == "Table" and [row["cells"][0] for row in table["rows"]] == ["web"]
        stale = {**pod, "metadata": {**pod["metadata"], "resourceVersion": "1",
                                     "labels": {"app": "web", "tier": "x"}}}
        conflict = await client.put("/api/v1/namespaces/default/pods/web", json=stale)
        assert (conflict.status, (await conflict.json())["reason"]) == (409, "Conflict")
        missing = await client.get("/api/v1/namespaces/default/pods/nope")
        assert (missing.status, (await missing.json())["message"]) == (404, 'pods "nope" not found')

    served(store, check)


def test_a_strategic_patch_through_the_api(store: SqliteStore) -> None:
    async def check(client: TestClient) -> None:
        await client.post("/api/v1/namespaces/default/pods", json=POD)
        patched = await client.patch("/api/v1/namespaces/default/pods/web", data=json.dumps(
            {"metadata": {"labels": {"tier": "front"}}}), headers={"Content-Type": "application/strategic-merge-patch+json"})
        assert patched.status == 200
        labels = (await patched.json())["metadata"]["labels"]
        assert labels == {"app": "web", "tier": "front"}

    served(store, check)


def test_who_may_do_what(store: SqliteStore) -> None:
    async def anonymous(client: TestClient) -> None:
        refused = await client.get("/api/v1/pods")
        assert (refused.status, (await refused.json())["reason"]) == (401, "Unauthorized")
        assert (await client.get("/version")).status == 200  # open to all, as kube-apiserver's

    async def viewer(client: TestClient) -> None:
        assert (await client.get("/api/v1/pods")).status == 200
        forbidden = await client.post("/api/v1/namespaces/default/pods", json=POD)
        status = await forbidden.json()
        assert (forbidden.status, status["reason"]) == (403, "Forbidden")
        assert status["message"] == ('pods is forbidden: User "podnet-viewer" cannot create resource "pods" in API '
                                     'group "" in the namespace "default"')

    served(store, anonymous, user=None)
    served(store, viewer, user=VIEWER)


def test_a_watch_sees_what_exists_then_each_change(store: SqliteStore) -> None:
    async def check(client: TestClient) -> None:
        await client.post("/api/v1/namespaces/default/pods", json=POD)
        response = await client.get("/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=3")
        first = json.loads(await response.content.readline())
        assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "web")
        await client.delete("/api/v1/namespaces/default/pods/web")
        second = json.loads(await response.content.readline())
        assert (second["type"], second["object"]["metadata"]["name"]) == ("DELETED", "web")

    served(store, check)


@pytest.mark.parametrize("path", ["/api/v1/namespaces/default/widgets", "/apis/apps/v9/deployments", "/apis/x"])
def test_what_is_not_served_is_404_as_a_status(store: SqliteStore, path: str) -> None:
    async def check(client: TestClient) -> None:
        answer = await client.get(path)
        assert (answer.status, (await answer.json())["kind"]) == (404, "Status")

    served(store, check)


def test_a_warning_about_a_field_named_with_a_control_character_is_one_header_line(store: SqliteStore) -> None:
    async def check(client: TestClient) -> None:
        odd = {**POD, "metadata": {"name": "odd"}, "spec": {**POD["spec"], "\x1f": None}}
        created = await client.post("/api/v1/namespaces/default/pods", json=odd)
        assert created.status == 201  # Warn, the default: accepted, the field dropped
        assert created.headers.getall("Warning") == ['299 - "unknown field \\"spec.\\x1f\\""']

    served(store, check)


def test_a_protobuf_body_is_read_and_a_bad_one_refused_as_a_status(store: SqliteStore) -> None:
    from tests.unit.test_protobuf import envelope, field

    protobuf = {"Content-Type": "application/vnd.kubernetes.protobuf"}

    async def check(client: TestClient) -> None:
        settings = envelope("v1", "ConfigMap", field(1, field(1, "settings")) + field(2, field(1, "a") + field(2, "b")))
        made = await client.post("/api/v1/namespaces/default/configmaps", data=settings, headers=protobuf)
        assert (made.status, (await made.json())["data"]) == (201, {"a": "b"})
        unknown = await client.post("/api/v1/namespaces/default/configmaps", data=envelope("v1", "Widget", b""),
                                    headers=protobuf)
        assert (unknown.status, (await unknown.json())["reason"]) == (415, "UnsupportedMediaType")
        broken = await client.post("/api/v1/namespaces/default/configmaps", data=b"k8s\x00\x0f", headers=protobuf)
        assert (broken.status, (await broken.json())["reason"]) == (400, "BadRequest")

    served(store, check)


def test_a_dry_run_checks_everything_and_writes_nothing(store: SqliteStore) -> None:
    async def check(client: TestClient) -> None:
        made = await client.post("/api/v1/namespaces/default/pods?dryRun=All", json=POD)
        assert made.status == 201 and (await made.json())["metadata"]["uid"]
        assert (await client.get("/api/v1/namespaces/default/pods/web")).status == 404
        before = store.revision()
        assert (await client.post("/api/v1/namespaces/default/pods", json=POD)).status == 201
        written = store.revision()
        for method, path, body in (("PATCH", "/api/v1/namespaces/default/pods/web?dryRun=All",
                                    {"metadata": {"labels": {"x": "y"}}}),
                                   ("DELETE", "/api/v1/namespaces/default/pods/web", {"dryRun": ["All"]}),
                                   ("DELETE", "/api/v1/namespaces/default/pods?dryRun=All", None),
                                   ("POST", "/api/v1/namespaces/default/services?dryRun=All",
                                    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                                     "spec": {"ports": [{"port": 80}]}})):
            answer = await client.request(method, path, json=body, headers={
                "Content-Type": "application/merge-patch+json" if method == "PATCH" else "application/json"})
            assert answer.status in (200, 201), (method, path, await answer.text())
        assert store.revision() == written > before
        refused = await client.post("/api/v1/namespaces/default/pods?dryRun=Some", json=POD)
        assert (refused.status, (await refused.json())["reason"]) == (400, "BadRequest")
        invalid = await client.post("/api/v1/namespaces/default/pods?dryRun=All",
                                    json={**POD, "metadata": {"name": "Bad_Name"}})
        assert invalid.status == 422  # a dry run is checked as the write would be

    served(store, check)


def test_anyone_may_ask_what_they_may_do_and_who_they_are(store: SqliteStore) -> None:
    async def check(client: TestClient) -> None:
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "default"}}}
        asked = await client.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=review)
        assert asked.status == 201 and (await asked.json())["status"] == {
            "allowed": False, "reason": "podnet:view may only get, list and watch"}
        who = await (await client.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={})).json()
        assert who["status"]["userInfo"] == {"username": "podnet-viewer",
                                             "groups": ["podnet:view", "system:authenticated"]}
        empty = await client.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json={"spec": {}})
        assert empty.status == 422
        listed = await client.get("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
        assert listed.status == 405  # only created, never read

    served(store, check, user=VIEWER)


def test_core_events_read_as_events_k8s_io_v1(store: SqliteStore) -> None:
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1"}, "reason": "Started",
             "message": "Started container echo", "type": "Normal", "lastTimestamp": "2026-12-07T20:49:06Z",
             "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
             "source": {"component": "kubelet"}}

    async def check(client: TestClient) -> None:
        assert (await client.post("/api/v1/namespaces/default/events", json=event)).status == 201
        (converted,) = (await (await client.get("/apis/events.k8s.io/v1/namespaces/default/events")).json())["items"]
        assert converted["apiVersion"] == "events.k8s.io/v1" and converted["metadata"]["resourceVersion"]
        assert {k: converted[k] for k in ("note", "regarding", "reportingController", "deprecatedCount")} == {
            "note": "Started container echo", "regarding": event["involvedObject"], "reportingController": "kubelet",
            "deprecatedCount": 1}

    served(store, check)


def test_a_view_made_from_other_objects_is_watched_through_them(store: SqliteStore) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                      "metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "e", "image": "x"}]}}}}

    async def check(client: TestClient) -> None:
        watch = await client.get("/apis/apps/v1/namespaces/default/replicasets?watch=1&timeoutSeconds=2")
        assert (await client.post("/apis/apps/v1/namespaces/default/deployments", json=deployment)).status == 201
        events = [json.loads(await watch.content.readline())]
        scaled = {"spec": {"replicas": 3}}
        assert (await client.patch("/apis/apps/v1/namespaces/default/deployments/web", json=scaled,
                                   headers={"Content-Type": "application/merge-patch+json"})).status == 200
        events += [json.loads(line) for line in (await watch.text()).splitlines()]
        assert [(e["type"], e["object"]["kind"], e["object"]["spec"]["replicas"]) for e in events] == [
            ("ADDED", "ReplicaSet", 1), ("MODIFIED", "ReplicaSet", 3)]

    served(store, check)


def test_a_services_ip_families_are_refused_in_kube_apiservers_words_naming_the_service(store: SqliteStore) -> None:
    async def check(client: TestClient) -> None:
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "both"},
                   "spec": {"ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]}}
        refused = await client.post("/api/v1/namespaces/default/services", json=service)
        body = await refused.json()
        assert (refused.status, body["details"]["name"], body["message"]) == (
            422, "both", 'Service "both" is invalid: spec.ipFamilyPolicy: Invalid value: "RequireDualStack": '
                         'this cluster is not configured for dual-stack services')
        preferred = await client.post("/api/v1/namespaces/default/services", json={
            **service, "spec": {"ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 80}]}})
        spec = (await preferred.json())["spec"]  # an IPv4 cluster: one family, as kube-apiserver gives it
        assert (preferred.status, spec["ipFamilies"], len(spec["clusterIPs"])) == (201, ["IPv4"], 1)

    served(store, check)
