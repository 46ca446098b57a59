"""What a user reads when a verb refuses, on a cluster lab whose API server
runs in the test (tests/served.py): apply names the file and the document, and
an object that is not there reads as kubectl says it, whichever verb looked.
The verbs run through click, against the real server and a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from podnet.cli.apply import apply
from podnet.cli.change import delete, label, scale
from podnet.cli.describe import describe
from podnet.cli.get import get
from podnet.errors import ManifestError, PodnetError
from podnet.model.pod import Pod
from podnet.store import resources
from podnet.store.sqlite import SqliteStore
from tests.served import served_lab

GOOD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p1}\nspec: {nodeName: n1}\n"
NO_NAMESPACE = "apiVersion: v1\nkind: Pod\nmetadata: {name: p2, namespace: nons}\nspec: {nodeName: n1}\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteStore]:
    """The one cluster lab up, its API served; the store, to see what was written."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PODNET_RUN_DIR", str(tmp_path_factory.mktemp("run")))
        with served_lab("errors") as (_, store):
            yield store


def run(command: click.Command, *args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(command, list(args), input=stdin)


def printed(error: BaseException | None) -> str:
    """What `podnet` prints for an error (cli/main.py)."""
    assert isinstance(error, PodnetError), error
    return f"{error.heading}: {error}"


def test_apply_errors_name_the_file_and_document(cluster: SqliteStore, tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(GOOD + "---\n" + NO_NAMESPACE)
    result = run(apply, "-f", str(path))
    assert isinstance(result.exception, ManifestError)
    assert str(result.exception) == f'{path}: document 2 (pod/p2): namespaces "nons" not found'
    result = run(apply, "-f", "-", stdin=NO_NAMESPACE)
    assert str(result.exception) == 'STDIN: document 1 (pod/p2): namespaces "nons" not found'
    (tmp_path / "good.yaml").write_text(GOOD)
    result = run(apply, "-f", str(tmp_path / "good.yaml"), "-f", "-", stdin=GOOD)
    assert str(result.exception) == "STDIN: document 1 (pod/p1): appears twice"
    assert resources.list_kind(cluster, Pod)[0] == []  # nothing is applied if any document is wrong


@pytest.mark.parametrize(("text", "said"), [
    ("kind: Pod\nmetadata: {name: p3}\n", "STDIN: document 1: apiVersion: is required"),
    ("apiVersion: apps/v2\nkind: Pod\nmetadata: {name: p3}\n",
     'STDIN: document 1: apiVersion: no matches for kind "Pod" in version "apps/v2"'),
])
def test_apply_refuses_a_document_that_names_no_served_type(cluster: SqliteStore, text: str, said: str) -> None:
    result = run(apply, "-f", "-", stdin=text)
    assert str(result.exception) == said
    assert resources.list_kind(cluster, Pod)[0] == []


def test_an_immutable_field_changed_applies_nothing(cluster: SqliteStore, tmp_path: Path) -> None:
    path = tmp_path / "pinned.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: pinned}\nspec: {nodeName: n1}\n")
    assert run(apply, "-f", str(path)).output == "pod/pinned created\n"
    path.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: later}\n---\n"
                    "apiVersion: v1\nkind: Pod\nmetadata: {name: pinned}\nspec: {nodeName: n2}\n")
    result = run(apply, "-f", str(path))
    assert printed(result.exception) == \
        f"error: {path}: document 2 (pod/pinned): spec.nodeName: field is immutable once the pod is scheduled"
    assert resources.get(cluster, Pod, "default", "pinned").node_name == "n1"  # type: ignore[union-attr]
    assert run(get, "namespace", "later").exit_code == 1  # the namespace before it was not made either
    assert run(delete, "pod", "pinned").output == 'pod "pinned" deleted\n'


NOT_FOUND = {
    "get": (get, ("pod", "x")),
    "get in a namespace": (get, ("pods", "x", "-n", "kube-system")),
    "get KIND/NAME": (get, ("pod/x",)),
    "delete": (delete, ("pod", "x")),
    "delete in a namespace": (delete, ("pod/x", "-n", "kube-system")),
    "describe": (describe, ("pod", "x")),
    "label": (label, ("pod", "x", "a=b")),
}


@pytest.mark.parametrize("case", NOT_FOUND)
def test_not_found_reads_as_kubectl(cluster: SqliteStore, case: str) -> None:
    command, args = NOT_FOUND[case]
    result = run(command, *args)
    assert (result.stdout, printed(result.exception)) == ("", 'Error from server (NotFound): pods "x" not found')


def test_not_found_names_the_resource_and_its_group(cluster: SqliteStore) -> None:
    result = run(scale, "deployment/web", "--replicas", "2")
    assert printed(result.exception) == 'Error from server (NotFound): deployments.apps "web" not found'
    assert run(delete, "pod", "x", "--ignore-not-found").exit_code == 0


def test_an_unknown_kind_reads_as_kubectl(cluster: SqliteStore) -> None:
    refused = run(get, "frobnicators").exception
    assert printed(refused) == 'error: the server doesn\'t have a resource type "frobnicators"'


def test_a_misspelled_field_is_refused_strictly_as_kubectl_asks(cluster: SqliteStore, tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: typo}\n"
                    "spec: {contianers: [{name: c}], containers: [{name: c}]}\n")
    assert printed(run(apply, "-f", str(path)).exception) == (
        f'Error from server (BadRequest): error when creating "{path}": Pod in version "v1" cannot be handled as a '
        'Pod: strict decoding error: unknown field "spec.contianers"')
    assert resources.get(cluster, Pod, "default", "typo") is None
