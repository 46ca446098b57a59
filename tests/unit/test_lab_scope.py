"""Lab scopes: the test suite's labs (PODNET_LAB_SCOPE=test) carry names no
user's lab can have, so the suite finds and removes only its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from podnet.errors import ManifestError
from podnet.lab import names, state
from podnet.lab.spec import load_lab_file, parse_lab

from tests import scope

TOPOLOGY = {"apiVersion": "podnet.dev/v1alpha1", "kind": "Topology", "hosts": [{"name": "a"}], "links": []}


def lab(name: str) -> dict:  # type: ignore[type-arg]
    return {**TOPOLOGY, "metadata": {"name": name}}


@pytest.fixture
def outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's shell: no scope."""
    monkeypatch.delenv(names.SCOPE_VARIABLE, raising=False)


@pytest.fixture
def inside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(names.SCOPE_VARIABLE, scope.SCOPE)


def test_the_suites_names() -> None:
    assert (scope.LABS, scope.NAMESPACES) == ("test_", "pn-test_")
    assert names.scope_prefix("") == ""


@pytest.mark.usefixtures("outside")
def test_outside_a_scope_every_lab_is_in_it_and_down_all_takes_every_podnet_namespace() -> None:
    assert names.scope_prefix() == "" and names.scope_namespaces() == "pn-"
    assert names.in_scope("demo") and names.in_scope("test_cluster")


@pytest.mark.usefixtures("inside")
def test_in_the_suites_scope_only_its_labs_and_namespaces() -> None:
    assert names.scope_prefix() == "test_" and names.scope_namespaces() == "pn-test_"
    assert names.in_scope("test_cluster") and not names.in_scope("demo") and not names.in_scope("test-cluster")


@pytest.mark.usefixtures("outside")
@pytest.mark.parametrize("name", ["test_cluster", "test_", "x_y"])
def test_a_user_cannot_name_a_lab_as_a_scope_does(name: str) -> None:
    with pytest.raises(ManifestError, match="metadata.name: .* is not a valid name"):
        parse_lab([lab(name)])


@pytest.mark.usefixtures("inside")
@pytest.mark.parametrize("name", ["test_", "test_a_b", "test_Web"])
def test_in_a_scope_the_rest_of_the_name_is_a_dns_label(name: str) -> None:
    with pytest.raises(ManifestError, match="metadata.name: .* is not a valid name"):
        parse_lab([lab(name)])


@pytest.mark.usefixtures("inside")
def test_in_a_scope_a_lab_is_named_in_it_and_a_nameless_file_gets_the_scopes_name(tmp_path: Path) -> None:
    assert parse_lab([lab("test_two-hosts")]).name == "test_two-hosts"
    path = tmp_path / "My Lab.yaml"
    path.write_text("apiVersion: podnet.dev/v1alpha1\nkind: Topology\nhosts: [{name: a}]\nlinks: []\n")
    assert load_lab_file(path).name == "test_my-lab"


@pytest.mark.parametrize("user_lab", ["test", "test-cluster", "testing", "t", "pn-test"])
def test_no_users_lab_has_a_namespace_of_the_suites(user_lab: str) -> None:
    """A user's lab name is a DNS label: its namespaces never start with pn-test_."""
    made = [names.lab_namespace(user_lab), names.member_namespace(user_lab, "n"),
            names.pod_namespace(user_lab, "default", "p")]
    assert not [ns for ns in made if scope.is_ours(ns)]
    assert [ns for ns in made if scope.is_foreign(ns)] == made
    assert scope.is_ours(names.member_namespace("test_cluster", "worker"))


@pytest.mark.usefixtures("inside")
def test_a_scope_sees_only_its_own_lab_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODNET_RUN_DIR", str(tmp_path))
    for name in ("demo", "test-x", "test_cluster"):
        state.LabRecord(name, "Topology", "lab.yaml").save()
    assert state.recorded_names() == ["test_cluster"]
    assert [record.name for record in state.running()] == ["test_cluster"]
    monkeypatch.delenv(names.SCOPE_VARIABLE)
    assert state.recorded_names() == ["demo", "test-x", "test_cluster"]  # a user's `lab down --all` finds the suite's
