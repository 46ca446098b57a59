"""What a user reads when a verb refuses, without a lab: apply names the file and
the document, and an object that is not there reads as kubectl says it, whichever
verb looked. The verbs run through click against a real SQLite store."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner

from podnet.cli.change import apply, delete, label, scale
from podnet.cli.describe import describe
from podnet.cli.get import get
from podnet.errors import ManifestError, PodnetError
from podnet.lab import client
from podnet.store import resources
from podnet.model.pod import Pod
from podnet.store.sqlite import SqliteStore

GOOD = "kind: Pod\nmetadata: {name: p1}\nspec: {nodeName: n1}\n"
NO_NAMESPACE = "kind: Pod\nmetadata: {name: p2, namespace: nons}\nspec: {nodeName: n1}\n"


@pytest.fixture
def cluster(store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SqliteStore:
    """The verbs' cluster is the test's store."""
    monkeypatch.setattr(client, "cluster_record", lambda lab_name: SimpleNamespace(store=str(tmp_path / "store.db")))
    return store


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


NOT_FOUND = {
    "get": (get, ("pod", "x")),
    "get in a namespace": (get, ("pods", "x", "-n", "apps")),
    "delete": (delete, ("pod", "x")),
    "delete in a namespace": (delete, ("pod/x", "-n", "apps")),
    "describe": (describe, ("pod", "x")),
    "label": (label, ("pod", "x", "a=b")),
}


@pytest.mark.parametrize("case", NOT_FOUND)
def test_not_found_reads_as_kubectl(cluster: SqliteStore, case: str) -> None:
    command, args = NOT_FOUND[case]
    result = run(command, *args)
    assert (result.stdout, printed(result.exception)) == ("", 'Error from server (NotFound): pods "x" not found')


def test_not_found_names_the_kind_asked_for(cluster: SqliteStore) -> None:
    result = run(scale, "deployment/web", "--replicas", "2")
    assert printed(result.exception) == 'Error from server (NotFound): deployments "web" not found'
    assert run(delete, "pod", "x", "--ignore-not-found").exit_code == 0
