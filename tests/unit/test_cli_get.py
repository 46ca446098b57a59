"""`podnet get` as kubectl prints it, on a cluster lab whose API server runs in
the test (tests/served.py): the server's Tables, never cut to a width, NAMESPACE
only under -A, the wide columns under -o wide, "No resources found" on stderr,
several kinds and KIND/NAME, one object's YAML alone, and a watch whose rows
line up under the first table. The server's refusals read as kubectl's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from podnet.apiserver.client import kubectl_words
from podnet.apiserver.tables.render import Layout
from podnet.cli.apply import apply
from podnet.cli.change import scale
from podnet.cli.get import get
from podnet.store.sqlite import SqliteStore
from tests.helpers import within
from tests.served import served_lab

SHOP = """apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop, labels: {app: cart}}
spec:
  replicas: 2
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec: {containers: [{name: echo, image: podnet/echo}]}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {selector: {app: cart}, ports: [{port: 80, name: http}, {port: 53, protocol: UDP, name: dns}]}
---
apiVersion: v1
kind: Pod
metadata: {name: a-pod-with-a-rather-long-name, namespace: shop, labels: {app: cart, tier: front}}
spec: {nodeName: n1, containers: [{name: echo}]}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, SqliteStore]]:
    """A served lab holding the shop (no controller runs: the Deployment makes no pods)."""
    run_dir = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PODNET_RUN_DIR", str(run_dir))
        with served_lab("gets") as (_, store):
            (run_dir / "shop.yaml").write_text(SHOP)
            assert CliRunner().invoke(apply, ["-f", str(run_dir / "shop.yaml")]).output.split("\n")[:3] == [
                "namespace/shop created", "deployment.apps/cart created", "service/cart created"]
            yield run_dir, store


def podnet_get(*args: str) -> tuple[str, str, int]:
    result = CliRunner().invoke(get, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.stdout, result.stderr, result.exit_code


def columns(text: str) -> list[list[str]]:
    """Each line's cells (cells here hold no spaces but RESTARTS' and AGE's)."""
    return [line.split() for line in text.splitlines()]


def test_one_namespace_has_no_namespace_column_and_wide_adds_columns(lab: tuple[Path, SqliteStore]) -> None:
    out, _, _ = podnet_get("pods", "-n", "shop")
    assert columns(out)[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert columns(out)[1][:2] == ["a-pod-with-a-rather-long-name", "0/1"]
    assert all(line == line.strip() for line in out.splitlines())  # no leading or trailing spaces
    wide, _, _ = podnet_get("pods", "-n", "shop", "-o", "wide")
    assert columns(wide)[0][5:] == ["IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"]
    everywhere, _, _ = podnet_get("pods", "-A")
    assert columns(everywhere)[0][:2] == ["NAMESPACE", "NAME"] and columns(everywhere)[1][0] == "shop"


def test_services_show_external_ip_and_every_port_uncut(lab: tuple[Path, SqliteStore]) -> None:
    out, _, _ = podnet_get("svc/cart", "-n", "shop")
    header, row = columns(out)
    assert header == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert row[0] == "cart" and row[3:5] == ["<none>", "80/TCP,53/UDP"]


def test_nothing_found_is_said_on_stderr(lab: tuple[Path, SqliteStore]) -> None:
    assert podnet_get("pods") == ("", "No resources found in default namespace.\n", 0)
    assert podnet_get("deploy", "-A", "-l", "app=nothing") == ("", "No resources found\n", 0)


def test_several_kinds_each_with_its_table_and_kind(lab: tuple[Path, SqliteStore]) -> None:
    out, _, _ = podnet_get("deploy,svc", "-n", "shop")
    tables = out.split("\n\n")
    assert [columns(t)[1][0] for t in tables] == ["deployment.apps/cart", "service/cart"]
    all_of_them, _, _ = podnet_get("all", "-n", "shop", "--show-labels")
    firsts = [columns(t)[1][0] for t in all_of_them.split("\n\n")]
    assert firsts[:3] == ["pod/a-pod-with-a-rather-long-name", "service/cart", "deployment.apps/cart"]
    assert firsts[3].startswith("replicaset.apps/cart-") and len(firsts) == 4  # kubectl's order
    assert columns(all_of_them)[1][-1] == "app=cart,tier=front"


def test_objects_in_kubectls_forms(lab: tuple[Path, SqliteStore]) -> None:
    one, _, _ = podnet_get("deploy", "cart", "-n", "shop", "-o", "yaml")
    document = yaml.safe_load(one)
    assert not one.startswith("---") and document["kind"] == "Deployment"
    assert document["metadata"]["uid"] and document["metadata"]["creationTimestamp"]
    assert f'creationTimestamp: "{document["metadata"]["creationTimestamp"]}"' in one  # quoted as kubectl quotes
    assert "managedFields" not in one  # hidden, as kubectl hides them
    several, _, _ = podnet_get("svc,deploy", "-n", "shop", "-o", "json")
    listing = json.loads(several)
    assert (listing["kind"], [item["kind"] for item in listing["items"]]) == ("List", ["Service", "Deployment"])
    assert several.startswith('{\n    "apiVersion": "v1"')  # indented by four, as kubectl's
    names, _, _ = podnet_get("deploy,svc", "-n", "shop", "-o", "name")
    assert names.split() == ["deployment.apps/cart", "service/cart"]
    ip, _, _ = podnet_get("svc", "cart", "-n", "shop", "-o", "jsonpath={.spec.clusterIP}")
    assert ip.startswith("10.96.")


def test_a_missing_name_is_reported_after_what_was_found(lab: tuple[Path, SqliteStore]) -> None:
    result = CliRunner().invoke(get, ["svc/cart", "svc/nope", "-n", "shop"])
    assert columns(result.stdout)[1][0] == "cart"
    assert str(result.exception) == 'services "nope" not found'


def test_a_watch_prints_each_change_under_the_first_tables_columns(lab: tuple[Path, SqliteStore]) -> None:
    run_dir, _ = lab
    watcher = subprocess.Popen([sys.executable, "-m", "podnet", "get", "deploy", "-n", "shop", "-w"],
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "PODNET_RUN_DIR": str(run_dir)})
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(watcher.stdout), daemon=True).start()  # type: ignore[arg-type]
    try:
        assert within(10, lambda: len(lines) == 2), lines
        assert CliRunner().invoke(scale, ["deploy/cart", "--replicas", "12", "-n", "shop"]).exit_code == 0
        assert within(10, lambda: len(lines) == 3), lines
    finally:
        watcher.terminate()
        watcher.wait(5)
    header, first, scaled = lines
    assert header.split()[:2] == ["NAME", "READY"] and first.split()[1] == "0/2" and scaled.split()[1] == "0/12"
    assert scaled.index("0/12") == first.index("0/2") == header.index("READY")  # kept in line


def test_a_layout_remembers_its_widths_as_kubectls_tabwriter() -> None:
    layout = Layout()
    assert layout.lines([["NAME", "STATUS", "AGE"], ["web", "Running", "1s"]]) == [
        "NAME   STATUS    AGE", "web    Running   1s"]
    assert layout.lines([["web", "Terminating", "9s"]]) == ["web    Terminating   9s"]  # wider: no columns run together
    assert layout.lines([["web", "Gone", "10s"]]) == ["web    Gone          10s"]  # never narrower again


STATUSES = {
    "not found": ({"reason": "NotFound", "message": 'pods "x" not found', "code": 404},
                  ("Error from server (NotFound)", 'pods "x" not found')),
    "invalid, one cause": ({"reason": "Invalid", "code": 422, "message": 'Service "web" is invalid: ...',
                            "details": {"kind": "Service", "name": "web", "causes": [
                                {"field": "spec.ports[0].port", "message": "Invalid value: 0"}]}},
                           ('The Service "web" is invalid', "spec.ports[0].port: Invalid value: 0")),
    "invalid, unnamed": ({"reason": "Invalid", "code": 422, "message": "x: bad", "details": {"causes": [
                          {"field": "x", "message": "bad"}, {"field": "y", "message": "worse"}]}},
                         ("The request is invalid", "[x: bad, y: worse]")),
    "unauthorized": ({"reason": "Unauthorized", "message": "Unauthorized", "code": 401},
                     ("error", "You must be logged in to the server (the server has asked for the client to provide "
                               "credentials)")),
    "no reason": ({"message": "teapot", "code": 418}, ("Error from server", "teapot")),
}


@pytest.mark.parametrize("case", STATUSES)
def test_a_status_in_kubectls_words(case: str) -> None:
    status, words = STATUSES[case]
    assert kubectl_words(status) == words
