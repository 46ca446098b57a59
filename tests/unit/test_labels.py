"""Labels, selectors and annotations validated as Kubernetes validates them, with
its words, wherever they enter: a manifest (apply), a lab file, and a change in
place (`podnet label` and `annotate`, through the API's update)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from podnet.api import writes
from podnet.errors import ManifestError
from podnet.lab.spec import load_lab_file
from podnet.model.fields import check_annotations, check_labels
from podnet.model.manifest import Resource, parse_resource
from podnet.model.pod import Pod
from podnet.store import resources
from podnet.store.sqlite import SqliteStore

NAME_RULE = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
VALUE_RULE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
              "and must start and end with an alphanumeric character")
SUBDOMAIN = "a" * 61 + ".b" * 96  # 253 characters: the longest prefix

GOOD_KEYS = {
    "a plain name": "app",
    "one character": "a",
    "upper case and digits": "MyName123",
    "dots, dashes and underscores inside": "my.name_is-here",
    "a prefixed name": "example.com/MyName",
    "Kubernetes's own": "kubernetes.io/metadata.name",
    "a name of 63": "a" * 63,
    "a prefix of 253": f"{SUBDOMAIN}/a",
}

BAD_KEYS = {
    "a space and a '!'": ("bad key!", f"name part {NAME_RULE}"),
    "empty": ("", "name part must be non-empty"),
    "a dash first": ("-app", f"name part {NAME_RULE}"),
    "a dot last": ("app.", f"name part {NAME_RULE}"),
    "a newline last": ("app\n", f"name part {NAME_RULE}"),
    "a name of 64": ("a" * 64, "name part must be no more than 63 characters"),
    "an empty prefix": ("/app", "prefix part must be non-empty"),
    "an empty name after the prefix": ("example.com/", "name part must be non-empty"),
    "an upper-case prefix": ("Example.com/app", "prefix part a lowercase RFC 1123 subdomain must consist of lower "
                                                "case alphanumeric characters, '-' or '.', and must start and end "
                                                "with an alphanumeric character"),
    "a prefix of 254": (f"x{SUBDOMAIN}/a", "prefix part must be no more than 253 characters"),
    "two slashes": ("a/b/c", f"a qualified name {NAME_RULE} with an optional DNS subdomain prefix and '/' "
                             "(e.g. 'example.com/MyName')"),
}

GOOD_VALUES = {"empty": "", "a word": "web", "a version": "1.0", "underscores": "my_value", "63 long": "v" * 63}

BAD_VALUES = {
    "a space and a '!'": ("bad value!", VALUE_RULE),
    "a dash first": ("-web", VALUE_RULE),
    "a dash last": ("web-", VALUE_RULE),
    "a slash": ("a/b", VALUE_RULE),
    "a newline last": ("web\n", VALUE_RULE),
    "64 long": ("v" * 64, "must be no more than 63 characters"),
}


@pytest.mark.parametrize("key", GOOD_KEYS.values(), ids=list(GOOD_KEYS))
def test_a_qualified_name_is_a_label_key(key: str) -> None:
    assert check_labels({key: "v"}, "metadata.labels") == {key: "v"}


@pytest.mark.parametrize(("key", "problem"), BAD_KEYS.values(), ids=list(BAD_KEYS))
def test_a_key_that_is_no_qualified_name_is_refused_in_kubernetess_words(key: str, problem: str) -> None:
    with pytest.raises(ManifestError) as caught:
        check_labels({"app": "web", key: "v"}, "metadata.labels")
    shown = key.replace("\n", "\\n")  # a message stays on one line
    assert str(caught.value) == f'metadata.labels: Invalid value: "{shown}": {problem}'


@pytest.mark.parametrize("value", GOOD_VALUES.values(), ids=list(GOOD_VALUES))
def test_a_label_value(value: str) -> None:
    assert check_labels({"app": value}, "metadata.labels") == {"app": value}


@pytest.mark.parametrize(("value", "problem"), BAD_VALUES.values(), ids=list(BAD_VALUES))
def test_a_bad_label_value_is_refused(value: str, problem: str) -> None:
    with pytest.raises(ManifestError) as caught:
        check_labels({"app": value}, "metadata.labels")
    assert str(caught.value) == f'metadata.labels: Invalid value: "{value.replace(chr(10), chr(92) + "n")}": {problem}'


def test_annotations_have_qualified_keys_read_in_lower_case_and_free_values() -> None:
    free = {"Example.com/Note": "anything at all: {\"json\": [1, 2]} and spaces!", "note": ""}
    assert check_annotations(free, "metadata.annotations") == free
    with pytest.raises(ManifestError, match=f'metadata.annotations: Invalid value: "bad key!": name part {NAME_RULE}'):
        check_annotations({"bad key!": "x"}, "metadata.annotations")
    with pytest.raises(ManifestError, match="metadata.annotations: Too long: must have at most 262144 bytes"):
        check_annotations({"big": "x" * 262142}, "metadata.annotations")
    assert check_annotations({"big": "x" * 262141}, "metadata.annotations")


POD: dict[str, Any] = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}


def deployment(selector: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {
        "selector": selector, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {}}}}


MANIFESTS = {  # where labels enter a manifest, and the field each error names
    "a pod's labels": ({**POD, "metadata": {"name": "p", "labels": {"bad key!": "1"}}},
                       f'Pod metadata.labels: Invalid value: "bad key!": name part {NAME_RULE}'),
    "a pod's label value": ({**POD, "metadata": {"name": "p", "labels": {"app": "bad value!"}}},
                            f'Pod metadata.labels: Invalid value: "bad value!": {VALUE_RULE}'),
    "a label key that is not text": ({**POD, "metadata": {"name": "p", "labels": {1: "a"}}},
                                     "Pod metadata.labels: key 1 must be a string, not a number"),
    "a pod's annotations": ({**POD, "metadata": {"name": "p", "annotations": {"/note": "x"}}},
                            'Pod metadata.annotations: Invalid value: "/note": prefix part must be non-empty'),
    "a nodeSelector": ({**POD, "spec": {"nodeSelector": {"disk type": "ssd"}}},
                       f'Pod spec.nodeSelector: Invalid value: "disk type": name part {NAME_RULE}'),
    "a service's selector": ({"kind": "Service", "metadata": {"name": "s"},
                              "spec": {"selector": {"app": "web!"}, "ports": [{"port": 80}]}},
                             f'Service spec.selector: Invalid value: "web!": {VALUE_RULE}'),
    "a template's labels": ({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {
                                "template": {"metadata": {"labels": {"app": "-web"}}, "spec": {}}}},
                            f'Deployment spec.template.metadata.labels: Invalid value: "-web": {VALUE_RULE}'),
    "matchLabels": (deployment({"matchLabels": {"a" * 64: "web"}}),
                    "Deployment spec.selector.matchLabels: Invalid value: "
                    f'"{"a" * 64}": name part must be no more than 63 characters'),
    "a matchExpressions key": (deployment({"matchExpressions": [{"key": "app!", "operator": "Exists"}]}),
                               f'spec.selector.matchExpressions[0].key: Invalid value: "app!": name part {NAME_RULE}'),
    "a matchExpressions value": (deployment({"matchExpressions": [{"key": "app", "operator": "In",
                                                                   "values": ["web", "db "]}]}),
                                 f'spec.selector.matchExpressions[0].values[1]: Invalid value: "db ": {VALUE_RULE}'),
    "a policy's podSelector": ({"kind": "NetworkPolicy", "metadata": {"name": "n"},
                                "spec": {"podSelector": {"matchLabels": {"role/": "db"}}}},
                               'NetworkPolicy spec.podSelector.matchLabels: Invalid value: "role/": '
                               "name part must be non-empty"),
}


@pytest.mark.parametrize(("manifest", "message"), MANIFESTS.values(), ids=list(MANIFESTS))
def test_a_manifest_with_a_bad_label_names_the_field(manifest: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_resource(manifest)
    assert message in str(caught.value)


def test_a_lab_file_with_a_bad_label_names_the_file_and_the_document(tmp_path: Path) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump_all([
        {"apiVersion": "podnet.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": "t"}, "nodes": [{"name": "n1"}]},
        {**POD, "apiVersion": "v1", "metadata": {"name": "p", "labels": {"bad key!": "1"}}}]))
    with pytest.raises(ManifestError) as caught:
        load_lab_file(lab)
    assert str(caught.value).startswith(f"{lab}: document 2")
    assert f'metadata.labels: Invalid value: "bad key!": name part {NAME_RULE}' in str(caught.value)


def relabel(field: str, **pairs: str):  # type: ignore[no-untyped-def]
    """What `podnet label` and `annotate` hand the API's update: the map with the pairs set."""
    def change(resource: Resource) -> Resource:
        meta = resource.metadata
        return replace(resource, metadata=replace(meta, **{field: {**getattr(meta, field), **pairs}}))  # type: ignore[type-var]
    return change


def test_podnet_label_cannot_store_a_bad_label(store: SqliteStore) -> None:
    writes.create(store, parse_resource({**POD, "metadata": {"name": "c", "labels": {"app": "web"}}}))
    with pytest.raises(ManifestError) as caught:
        writes.update(store, "Pod", "default", "c", relabel("labels", **{"bad key!": "1"}))
    assert str(caught.value) == f'The Pod "c" is invalid: metadata.labels: Invalid value: "bad key!": name part {NAME_RULE}'
    with pytest.raises(ManifestError, match='The Pod "c" is invalid: metadata.annotations: Invalid value: "a/b/c"'):
        writes.update(store, "Pod", "default", "c", relabel("annotations", **{"a/b/c": "x"}))
    assert resources.get(store, Pod, "default", "c").metadata.labels == {"app": "web"}  # type: ignore[union-attr]
    _, changed = writes.update(store, "Pod", "default", "c", relabel("labels", **{"example.com/tier": "front"}))
    assert changed
