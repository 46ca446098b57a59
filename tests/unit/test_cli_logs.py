"""`podnet logs` on a cluster lab whose API server runs in the test
(tests/served.py): the pod, or the Deployment's pod kubectl would pick, read
from the real server; the default container and kubectl's words for it on
stderr; the log subresource asked with kubectl's query; the server's refusal
as one line. The log body itself comes from ApiClient.stream, which is checked
against the real server and, for `logs`, replaced by a recording of the request
(the server's pods/log is another module's, tested there)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from click.testing import CliRunner

from podnet.apiserver.client import ApiClient, ServerError
from podnet.cli.logs import default_container, logging_rank, logs, since_seconds
from podnet.errors import PodnetError
from podnet.lab.client import cluster_api
from podnet.model.manifest import parse_resource
from podnet.store import resources
from tests.served import served_lab

PODS: list[dict[str, Any]] = [
    {"kind": "Pod", "metadata": {"name": "solo", "labels": {"app": "solo"}},
     "spec": {"nodeName": "n1", "containers": [{"name": "main"}]}},
    {"kind": "Pod", "metadata": {"name": "pair", "annotations": {}},
     "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "setup"}]}},
    {"kind": "Pod", "metadata": {"name": "chosen", "annotations": {"kubectl.kubernetes.io/default-container": "b"}},
     "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]}},
    {"kind": "Pod", "metadata": {"name": "web-pending", "labels": {"app": "web"}},
     "spec": {"containers": [{"name": "w"}]}},
    {"kind": "Pod", "metadata": {"name": "web-placed", "labels": {"app": "web"}},
     "spec": {"nodeName": "n2", "containers": [{"name": "w"}]}},
]
DEPLOYMENT = {"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "web"},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "w"}]}}}}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PODNET_RUN_DIR", str(tmp_path_factory.mktemp("run")))
        with served_lab("logs") as (_, store):
            for document in (*PODS, DEPLOYMENT):
                resources.put(store, parse_resource(document))
            yield


@pytest.fixture
def asked(lab: None, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, str], float | None]]:
    """The log requests `logs` makes (url, query, timeout), each answered with two pieces."""
    requests: list[tuple[str, dict[str, str], float | None]] = []

    def stream(self: ApiClient, url: str, query: Mapping[str, str] | None = None, timeout: float | None = 30.0,
               accept: str = "*/*") -> Iterator[bytes]:
        requests.append((url, dict(query or {}), timeout))
        yield b"one\n"
        yield b"two\n"

    monkeypatch.setattr(ApiClient, "stream", stream)
    return requests


def podnet_logs(*args: str) -> tuple[str, str, BaseException | None]:
    result = CliRunner().invoke(logs, list(args))
    return result.stdout, result.stderr, result.exception


def test_one_container_pod_prints_its_log_with_nothing_said(asked: list[Any]) -> None:
    assert podnet_logs("solo") == ("one\ntwo\n", "", None)
    assert asked == [("/api/v1/namespaces/default/pods/solo/log", {"container": "main"}, 30.0)]


def test_options_become_kubectls_query(asked: list[Any]) -> None:
    out, _, error = podnet_logs("pod/solo", "-f", "--tail", "5", "-p", "--timestamps", "--since", "1h30m",
                                "--limit-bytes", "100")
    assert (out, error) == ("one\ntwo\n", None)
    assert asked == [("/api/v1/namespaces/default/pods/solo/log",
                      {"container": "main", "follow": "true", "previous": "true", "timestamps": "true",
                       "tailLines": "5", "sinceSeconds": "5400", "limitBytes": "100"},
                      None)]  # a follow waits as long as it takes


def test_several_containers_default_to_the_first_and_say_so(asked: list[Any]) -> None:
    assert podnet_logs("pair") == ("one\ntwo\n", 'Defaulted container "a" out of: a, b, setup (init)\n', None)
    assert podnet_logs("pair", "-c", "b")[1] == ""
    assert podnet_logs("pair", "b")[1] == ""
    assert podnet_logs("chosen")[1] == ""  # the annotation's choice, silently
    assert [query["container"] for _, query, _ in asked] == ["a", "b", "b", "b"]


def test_a_deployment_shows_the_pod_kubectl_picks(asked: list[Any]) -> None:
    assert podnet_logs("deploy/web") == ("one\ntwo\n", "Found 2 pods, using pod/web-placed\n", None)
    assert asked[0][0] == "/api/v1/namespaces/default/pods/web-placed/log"


def test_a_missing_pod_is_kubectls_one_line(asked: list[Any]) -> None:
    _, _, error = podnet_logs("nothere")
    assert isinstance(error, ServerError)
    assert f"{error.heading}: {error}" == 'Error from server (NotFound): pods "nothere" not found'
    assert isinstance(podnet_logs("svc/x")[2], PodnetError)
    assert asked == []


def test_bad_flags_are_usage_errors(asked: list[Any]) -> None:
    for args in (["solo", "--since", "5 minutes"], ["solo", "--tail", "-2"], ["pair", "a", "-c", "b"]):
        assert CliRunner().invoke(logs, args).exit_code == 2, args  # click's usage error
    assert asked == []


@pytest.mark.parametrize(("duration", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("1.5h", 5400),
                                                   ("300ms", 1), ("2m30.6s", 151)])
def test_since_takes_go_durations(duration: str, seconds: int) -> None:
    assert since_seconds(duration) == seconds


def test_kubectls_order_for_logging() -> None:
    def pod(name: str, node: str = "n1", phase: str = "Running", ready_at: str = "", restarts: int = 0,
            created: str = "2024-01-01T00:00:00Z") -> dict[str, Any]:
        conditions = [{"type": "Ready", "status": "True" if ready_at else "False", "lastTransitionTime": ready_at}]
        return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"nodeName": node},
                "status": {"phase": phase, "conditions": conditions,
                           "containerStatuses": [{"name": "c", "restartCount": restarts}]}}

    pods = [pod("unscheduled", node=""), pod("pending", phase="Pending"), pod("not-ready"),
            pod("ready-later", ready_at="2024-01-02T00:00:00Z"), pod("ready-first", ready_at="2024-01-01T00:00:00Z"),
            pod("restarted", restarts=3), pod("newer", created="2024-02-01T00:00:00Z")]
    assert [p["metadata"]["name"] for p in sorted(pods, key=logging_rank)] == [
        "ready-first", "ready-later", "restarted", "not-ready", "newer", "pending", "unscheduled"]


def test_an_annotation_naming_no_container_is_said_and_ignored() -> None:
    said: list[str] = []
    pod = {"metadata": {"name": "p", "annotations": {"kubectl.kubernetes.io/default-container": "gone"}},
           "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    assert default_container(pod, said.append) == "a"
    assert said == ['Default container name "gone" not found in pod p', 'Defaulted container "a" out of: a, b']


def test_stream_yields_the_body_as_it_comes_and_raises_a_refusal(lab: None) -> None:
    with cluster_api(None) as api:
        body = b"".join(api.stream("/api/v1/namespaces/default/pods/solo", accept="application/json"))
        assert b'"name":"solo"' in body.replace(b" ", b"")
        with pytest.raises(ServerError, match='pods "nothere" not found'):
            list(api.stream("/api/v1/namespaces/default/pods/nothere"))
