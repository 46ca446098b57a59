"""Server-side apply and managedFields as kube-apiserver keeps them: the field set
of an object in FieldsV1, appliers and updaters owning fields, conflicts (409,
with kube-apiserver's message and causes), force, fields an applier drops, and
the hand-over from kubectl's client-side apply and `kubectl scale`."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from typing import Any

import pytest

from podnet.apiserver.fieldset import (extract, fields_of, from_fields_v1, path_text, remove_path, to_fields_v1,
                                       value_at)
from podnet.apiserver.managed import (LAST_APPLIED, Conflict, Manager, conflict_error, managers_of, record_update,
                                      server_side_apply)
from podnet.apiserver.merge_keys import rules_for

T1, T2, T3 = (datetime(2025, 1, day, 12, 0, 0, tzinfo=timezone.utc) for day in (1, 2, 3))
DEPLOYMENT_RULES = rules_for("Deployment")


def deployment(replicas: int | None = 2, image: str = "nginx:1", **extra: Any) -> dict[str, Any]:
    """The Deployment a user applies; `extra` goes into its container."""
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"containers": [{"name": "web", "image": image, **extra}]}}}
    if replicas is not None:
        spec = {"replicas": replicas} | spec
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "apps", "labels": {"app": "web"}}, "spec": spec}


def container(obj: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][index]


def owners(obj: dict[str, Any]) -> dict[str, set[str]]:
    """Each manager (name/operation) and the fields it owns, as conflict paths."""
    return {f"{entry.manager}/{entry.operation}": {path_text(path) for path in entry.fields}
            for entry in managers_of(obj)}


def applied_by(manager: str, obj: dict[str, Any], live: dict[str, Any] | None = None, force: bool = False,
               now: datetime = T1) -> dict[str, Any]:
    result, conflicts = server_side_apply(live, obj, manager, force, now=now)
    assert conflicts == ()
    return result


# --- the field set, in FieldsV1

def test_field_set_of_a_deployment_as_kube_apiserver_writes_it() -> None:
    obj = deployment(ports=[{"containerPort": 80}])
    obj["metadata"] |= {"uid": "u-1", "resourceVersion": "7", "generation": 1,
                        "creationTimestamp": "2025-01-01T00:00:00Z"}
    obj["spec"]["template"]["spec"]["volumes"] = [{"name": "cache", "emptyDir": {}}]
    obj["spec"]["template"]["spec"]["tolerations"] = [{"key": "a", "operator": "Exists"}]
    container_fields = {".": {}, "f:image": {}, "f:name": {}, "f:ports": {
        'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}
    assert to_fields_v1(fields_of(obj, DEPLOYMENT_RULES)) == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},  # a LabelSelector is atomic
            "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                           "f:spec": {"f:containers": {'k:{"name":"web"}': container_fields},
                                      "f:tolerations": {},  # an atomic list is one field
                                      "f:volumes": {'k:{"name":"cache"}': {".": {}, "f:emptyDir": {}, "f:name": {}}}}}},
    }


FIELD_SETS = {
    "a set's members": ("Node", {"spec": {"podCIDRs": ["10.244.1.0/24", "fd00::/64"]}},
                        {'.spec.podCIDRs[="10.244.1.0/24"]', '.spec.podCIDRs[="fd00::/64"]'}),
    "finalizers are a set": ("ConfigMap", {"metadata": {"finalizers": ["a"]}}, {'.metadata.finalizers[="a"]'}),
    "Service ports keyed by port and protocol": (
        "Service", {"spec": {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}},
        {'.spec.ports[port=53,protocol="UDP"]', '.spec.ports[port=53,protocol="UDP"].port',
         '.spec.ports[port=53,protocol="UDP"].protocol', '.spec.ports[port=53,protocol="TCP"]',
         '.spec.ports[port=53,protocol="TCP"].port', '.spec.ports[port=53,protocol="TCP"].protocol'}),
    "a Service's selector is atomic": ("Service", {"spec": {"selector": {"app": "web"}}}, {".spec.selector"}),
    "a ConfigMap's data is granular": ("ConfigMap", {"data": {"a": "1", "b": "2"}}, {".data.a", ".data.b"}),
    "a pod's nodeSelector is atomic": ("Pod", {"spec": {"nodeSelector": {"disk": "ssd"}}}, {".spec.nodeSelector"}),
    "an EndpointSlice's endpoints are atomic": ("EndpointSlice", {"endpoints": [{"addresses": ["10.244.1.2"]}]},
                                                {".endpoints"}),
    "an empty map is a field of its own": ("ConfigMap", {"data": {}}, {".data"}),
    "nulls set nothing": ("ConfigMap", {"data": {"a": None}, "binaryData": None}, set()),
    "identity is nobody's": ("ConfigMap", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "c", "namespace": "n", "uid": "u", "resourceVersion": "1", "generation": 2, "creationTimestamp": "t",
        "managedFields": [{"manager": "m"}], "deletionTimestamp": "t", "deletionGracePeriodSeconds": 30,
        "selfLink": "/x"}}, set()),
}


@pytest.mark.parametrize("kind, obj, paths", FIELD_SETS.values(), ids=FIELD_SETS.keys())
def test_field_set(kind: str, obj: dict[str, Any], paths: set[str]) -> None:
    fields = fields_of(obj, rules_for(kind))
    assert {path_text(path) for path in fields} == paths
    assert from_fields_v1(to_fields_v1(fields)) == fields


def test_a_field_set_extracts_what_it_names() -> None:
    obj = deployment(ports=[{"containerPort": 80, "name": "http"}], env=[{"name": "A", "value": "1"}])
    rules = DEPLOYMENT_RULES
    assert extract(obj, fields_of(obj, rules), rules) == obj
    image_only = {path for path in fields_of(obj, rules) if path_text(path).endswith(('[name="web"]', ".image"))}
    assert extract(obj, image_only, rules) == {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"template": {"spec": {"containers": [{"image": "nginx:1"}]}}}}


def test_a_path_finds_and_removes_a_keyed_item() -> None:
    obj = deployment(ports=[{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}])
    item = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}', "f:ports",
            'k:{"containerPort":53,"protocol":"UDP"}')
    assert value_at(obj, item, DEPLOYMENT_RULES) == {"containerPort": 53, "protocol": "UDP"}
    remove_path(obj, item, DEPLOYMENT_RULES)
    assert container(obj)["ports"] == [{"containerPort": 80}]
    with pytest.raises(KeyError):
        value_at(obj, item, DEPLOYMENT_RULES)


# --- applying

def test_apply_creates_with_one_apply_manager() -> None:
    obj = applied_by("kubectl", deployment())
    assert obj == deployment() | {"metadata": deployment()["metadata"] | {"managedFields": [{
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": "2025-01-01T12:00:00Z",
        "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(fields_of(deployment(), DEPLOYMENT_RULES))}]}}


def test_applying_the_same_again_changes_nothing_not_even_the_time() -> None:
    obj = applied_by("kubectl", deployment())
    assert applied_by("kubectl", deployment(), obj, now=T2) == obj


def test_applying_a_change_moves_the_time() -> None:
    obj = applied_by("kubectl", deployment(), applied_by("kubectl", deployment()), now=T2)
    changed = applied_by("kubectl", deployment(image="nginx:2"), obj, now=T3)
    assert container(changed)["image"] == "nginx:2"
    assert changed["metadata"]["managedFields"][0]["time"] == "2025-01-03T12:00:00Z"


def scaled(obj: dict[str, Any], replicas: int) -> dict[str, Any]:
    """What `kubectl scale` writes (manager "kubectl", the scale subresource)."""
    after = copy.deepcopy(obj)
    after["spec"]["replicas"] = replicas
    return record_update(obj, after, "kubectl", subresource="scale", now=T2)


def edited(obj: dict[str, Any], image: str) -> dict[str, Any]:
    after = copy.deepcopy(obj)
    container(after)["image"] = image
    return record_update(obj, after, "kubectl-edit", now=T2)


def client_side_applied(obj: dict[str, Any]) -> dict[str, Any]:
    """What `kubectl apply` (client-side) creates: the object, its last-applied annotation."""
    created = copy.deepcopy(obj)
    created["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(obj) + "\n"}
    return record_update(None, created, "kubectl-client-side-apply", now=T1)


def relabelled(obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"]["labels"]["app"] = "api"
    return obj


def with_tolerations(obj: dict[str, Any], key: str) -> dict[str, Any]:
    obj["spec"]["template"]["spec"]["tolerations"] = [{"key": key, "operator": "Exists"}]
    return obj


CONFLICTS = {
    "another applier's field set to another value": (
        lambda: applied_by("ci", deployment()), deployment(replicas=3), "kubectl",
        'Apply failed with 1 conflict: conflict with "ci": .spec.replicas'),
    "kubectl scale's replicas": (
        lambda: scaled(applied_by("kubectl", deployment()), 5), deployment(), "kubectl",
        'Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas'),
    "kubectl edit's image": (
        lambda: edited(applied_by("kubectl", deployment()), "nginx:9"), deployment(image="nginx:1"), "kubectl",
        'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: '
        '.spec.template.spec.containers[name="web"].image'),
    "a client-side apply's field, to another manager than kubectl": (
        lambda: client_side_applied(deployment()), deployment(image="nginx:2"), "helm",
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: '
        '.spec.template.spec.containers[name="web"].image'),
    "a field of an object nobody tracked": (
        lambda: deployment(), deployment(replicas=4), "kubectl",
        'Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas'),
    "an atomic list another manager set": (
        lambda: record_update(deployment(), with_tolerations(deployment(), "a"), "kubectl-edit", now=T1),
        with_tolerations(deployment(), "b"), "kubectl",
        'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.template.spec.tolerations'),
    "three fields of three managers": (
        lambda: edited(scaled(applied_by("ci", deployment()), 5), "nginx:9"), relabelled(deployment(replicas=3)),
        "kubectl",
        'Apply failed with 3 conflicts: conflicts with "ci":\n- .metadata.labels.app\n'
        'conflicts with "kubectl" with subresource "scale" using apps/v1:\n- .spec.replicas\n'
        'conflicts with "kubectl-edit" using apps/v1:\n- .spec.template.spec.containers[name="web"].image'),
}


@pytest.mark.parametrize("live, applied, manager, message", CONFLICTS.values(), ids=CONFLICTS.keys())
def test_conflict(live: Any, applied: dict[str, Any], manager: str, message: str) -> None:
    before = live()
    result, conflicts = server_side_apply(before, applied, manager, now=T3)
    assert result == before  # refused: nothing changes
    refusal = conflict_error(conflicts)
    assert (refusal.code, refusal.reason, refusal.message) == (409, "Conflict", message)
    assert "\n" not in str(refusal)
    forced, none = server_side_apply(before, applied, manager, force=True, now=T3)
    assert none == ()
    assert fields_of(applied, DEPLOYMENT_RULES) <= next(entry.fields for entry in managers_of(forced)
                                                        if entry.manager == manager and entry.operation == "Apply")
    taken = {conflict.path for conflict in conflicts}
    assert not any(taken & entry.fields for entry in managers_of(forced) if entry.manager != manager
                   or entry.operation != "Apply")


def test_a_conflict_names_its_cause_as_kube_apiserver_does() -> None:
    _, conflicts = server_side_apply(scaled(applied_by("kubectl", deployment()), 5), deployment(), "kubectl")
    assert conflict_error(conflicts).causes == ({
        "type": "FieldManagerConflict", "message": 'conflict with "kubectl" with subresource "scale" using apps/v1',
        "field": ".spec.replicas"},)


def test_force_takes_the_field_over() -> None:
    live = scaled(applied_by("kubectl", deployment()), 5)
    forced, _ = server_side_apply(live, deployment(replicas=2), "kubectl", force=True, now=T3)
    assert forced["spec"]["replicas"] == 2
    assert owners(forced) == {"kubectl/Apply": {path_text(path) for path in fields_of(deployment(), DEPLOYMENT_RULES)}}


def test_the_same_value_is_shared_without_a_conflict() -> None:
    shared = applied_by("ci", deployment(), applied_by("kubectl", deployment()), now=T2)
    assert ".spec.replicas" in owners(shared)["kubectl/Apply"] & owners(shared)["ci/Apply"]


def test_a_dropped_field_is_removed() -> None:
    obj = applied_by("kubectl", deployment(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]))
    obj["metadata"]["labels"]["tier"] = "front"  # not the applier's: it stays
    again = applied_by("kubectl", deployment(env=[{"name": "A", "value": "1"}]), obj, now=T2)
    assert container(again)["env"] == [{"name": "A", "value": "1"}]
    assert again["metadata"]["labels"] == {"app": "web", "tier": "front"}


def test_a_dropped_field_another_manager_owns_stays() -> None:
    obj = applied_by("ci", deployment(), applied_by("kubectl", deployment()), now=T2)
    again = applied_by("kubectl", deployment(replicas=None), obj, now=T3)
    assert again["spec"]["replicas"] == 2
    assert ".spec.replicas" not in owners(again)["kubectl/Apply"]


def test_a_dropped_container_stays_with_what_another_manager_set_in_it() -> None:
    two = deployment()
    two["spec"]["template"]["spec"]["containers"].append({"name": "log", "image": "busybox"})
    obj = applied_by("kubectl", two)
    after = copy.deepcopy(obj)
    container(after, 1)["imagePullPolicy"] = "Always"
    obj = record_update(obj, after, "kubectl-edit", now=T2)
    again = applied_by("kubectl", deployment(), obj, now=T3)
    assert again["spec"]["template"]["spec"]["containers"][1] == {"name": "log", "imagePullPolicy": "Always"}


def test_a_dropped_container_nobody_else_touched_goes() -> None:
    two = deployment()
    two["spec"]["template"]["spec"]["containers"].append({"name": "log", "image": "busybox"})
    again = applied_by("kubectl", deployment(), applied_by("kubectl", two), now=T2)
    assert [c["name"] for c in again["spec"]["template"]["spec"]["containers"]] == ["web"]


def test_items_another_manager_added_keep_their_place() -> None:
    obj = applied_by("kubectl", deployment(ports=[{"containerPort": 80}, {"containerPort": 443}]))
    after = copy.deepcopy(obj)
    container(after)["ports"].insert(1, {"containerPort": 8080})
    obj = record_update(obj, after, "kubectl-edit", now=T2)
    again = applied_by("kubectl", deployment(image="nginx:2", ports=[{"containerPort": 80}, {"containerPort": 443}]),
                       obj, now=T3)
    assert [port["containerPort"] for port in container(again)["ports"]] == [80, 8080, 443]


def test_service_ports_of_one_number_and_two_protocols_are_two_items() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns"},
               "spec": {"ports": [{"port": 53, "protocol": "UDP", "name": "dns"}]}}
    both = copy.deepcopy(service)
    both["spec"]["ports"].append({"port": 53, "protocol": "TCP", "name": "dns-tcp"})
    obj = applied_by("kubectl", both, applied_by("kubectl", service), now=T2)
    assert obj["spec"]["ports"] == both["spec"]["ports"]


def test_sets_merge_as_sets() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["a"]}}
    obj = applied_by("kubectl", cm)
    theirs = copy.deepcopy(cm)
    theirs["metadata"]["finalizers"] = ["b"]
    assert applied_by("ci", theirs, obj, now=T2)["metadata"]["finalizers"] == ["a", "b"]


def test_client_side_apply_hands_over_to_kubectl_server_side() -> None:
    """kubectl apply, then kubectl apply --server-side of a changed file: no conflict;
    kubectl owns the fields and the last-applied annotation follows the file."""
    live = client_side_applied(deployment())
    obj, conflicts = server_side_apply(live, deployment(image="nginx:2"), "kubectl", now=T2)
    assert conflicts == ()
    assert container(obj)["image"] == "nginx:2"
    assert json.loads(obj["metadata"]["annotations"][LAST_APPLIED]) == deployment(image="nginx:2")
    assert '.spec.template.spec.containers[name="web"].image' in owners(obj)["kubectl/Apply"]
    assert '.spec.template.spec.containers[name="web"].image' not in owners(obj)["kubectl-client-side-apply/Update"]


def test_an_apply_through_the_resource_sets_no_status() -> None:
    with_status = deployment() | {"status": {"replicas": 9}}
    obj = applied_by("kubectl", with_status)
    assert "status" not in obj
    status, _ = server_side_apply(obj, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                                        "status": {"replicas": 2}, "spec": {"replicas": 7}},
                                  "controller", subresource="status", now=T2)
    assert (status["status"], status["spec"]["replicas"]) == ({"replicas": 2}, 2)
    assert owners(status)["controller/Apply"] == {".status.replicas"}


# --- ordinary writes

def test_a_create_owns_everything_it_wrote() -> None:
    obj = record_update(None, deployment(), "kubectl-create", now=T1)
    assert obj["metadata"]["managedFields"] == [{
        "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1", "time": "2025-01-01T12:00:00Z",
        "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(fields_of(deployment(), DEPLOYMENT_RULES))}]


def test_an_update_takes_what_it_changed_from_the_applier() -> None:
    obj = scaled(applied_by("kubectl", deployment()), 5)
    assert owners(obj)["kubectl/Update"] == {".spec.replicas"}
    assert ".spec.replicas" not in owners(obj)["kubectl/Apply"]
    assert [entry.operation for entry in managers_of(obj)] == ["Apply", "Update"]  # as kube-apiserver sorts them


def test_an_update_that_changes_nothing_keeps_the_time() -> None:
    obj = scaled(applied_by("kubectl", deployment()), 5)
    again = record_update(obj, copy.deepcopy(obj), "kubectl", subresource="scale", now=T3)
    assert again == obj


def test_what_an_update_removes_nobody_owns() -> None:
    obj = applied_by("kubectl", deployment())
    after = copy.deepcopy(obj)
    del after["metadata"]["labels"]
    updated = record_update(obj, after, "kubectl-label", now=T2)
    assert ".metadata.labels.app" not in owners(updated)["kubectl/Apply"]
    assert "kubectl-label/Update" not in owners(updated)  # it owns nothing, so it is not listed


def test_an_update_setting_managed_fields_is_taken_as_written() -> None:
    """kubectl moves a client-side apply's fields to "kubectl" with a patch of managedFields."""
    live = client_side_applied(deployment())
    after = copy.deepcopy(live)
    after["metadata"]["managedFields"] = [Manager("kubectl", "Apply", "apps/v1", time="2025-01-01T12:00:00Z",
                                                  fields=fields_of(deployment(), DEPLOYMENT_RULES)).to_json()]
    upgraded = record_update(live, after, "kubectl-client-side-apply", now=T2)
    assert list(owners(upgraded)) == ["kubectl/Apply"]


def test_managers_are_told_apart_as_kube_apiserver_tells_them() -> None:
    manager = Manager("kubectl", "Update", "apps/v1", "scale")
    assert Conflict(manager, ("f:spec", "f:replicas")).cause()["field"] == ".spec.replicas"
    assert manager.identity == Manager("kubectl", "Update", "apps/v1", "scale", time="t").identity
    assert Manager("kubectl", "Apply", "v1").identity == Manager("kubectl", "Apply", "apps/v1").identity


def test_malformed_managed_fields_are_read_as_far_as_they_go() -> None:
    obj = deployment() | {"metadata": {"name": "web", "managedFields": [
        "junk", {"manager": "m", "operation": "Update", "apiVersion": "apps/v1",
                 "fieldsV1": {".": {}, "f:spec": {"f:replicas": {}}}}]}}
    assert [(entry.manager, {path_text(path) for path in entry.fields}) for entry in managers_of(obj)] == [
        ("m", {".spec.replicas"})]
