"""The kubelet part's rooms that need no kernel: the CrashLoopBackOff schedule,
status and events written to a real SQLite store, the pod workers' one piece of
work per sandbox, and the sandbox records an agent reads back after a crash."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from podnet.agent.containers import BACKOFF_FIRST, BACKOFF_MAX, Backoff, ContainerKey, Step
from podnet.agent.pod_status import PodStatus, StatusWriter
from podnet.agent.pod_workers import PodWorkers
from podnet.agent.sandboxes import Sandboxes
from podnet.api import delete
from podnet.cni.runtime import NetworkConfigList
from podnet.errors import PodnetError
from podnet.model.container_status import ContainerState, ContainerStatus
from podnet.model.event import Event
from podnet.model.manifest import parse_resource
from podnet.model.meta import ObjectMeta
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.store import resources
from podnet.store.sqlite import SqliteStore

WEB = ContainerKey("pn-lab.default.web", "web")


def test_backoff_waits_10_s_then_doubles_up_to_5_min() -> None:
    backoff = Backoff()
    assert backoff.step(WEB, 0.0) is Step.BACK_OFF
    assert backoff.step(WEB, BACKOFF_FIRST - 0.1) is Step.WAIT
    restarts, now = [], 0.0
    while len(restarts) < 8:
        now += 1.0
        if backoff.step(WEB, now) is Step.RESTART:
            restarts.append(now)
    gaps = [later - earlier for earlier, later in zip([0.0, *restarts], restarts)]
    assert gaps == [10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0]
    assert BACKOFF_MAX == 300.0


def test_a_reset_pod_backs_off_from_the_start_and_others_keep_theirs() -> None:
    backoff = Backoff()
    other = ContainerKey("pn-lab.default.other", "web")
    for key in (WEB, other):
        backoff.step(key, 0.0)
    backoff.reset(WEB.sandbox)
    assert backoff.step(WEB, 50.0) is Step.BACK_OFF
    assert backoff.step(other, 50.0) is Step.RESTART


@pytest.fixture
def bound(store: SqliteStore) -> Pod:
    resources.put(store, Node(ObjectMeta("n1", ""), internal_ips=("172.18.0.2",)))
    pod = parse_resource({"kind": "Pod", "metadata": {"name": "web"}, "spec": {"nodeName": "n1"}})
    resources.put(store, pod)
    return pod  # type: ignore[return-value]


RUNNING = ContainerStatus("echo", ContainerState("running", started_at="2026-12-07T10:00:00Z"), ready=True,
                          restart_count=2, started=True, image="podnet/echo")


def _running(ready: bool = True) -> PodStatus:
    return PodStatus("Running", ready, ("10.244.0.5",), (RUNNING,), ())


def test_status_says_running_on_this_node_with_each_container(store: SqliteStore, bound: Pod) -> None:
    writer = StatusWriter(store, "n1")
    written = writer.write(bound, _running())
    stored = resources.get(store, Pod, "default", "web")
    assert written == stored and stored is not None
    assert (stored.pod_ip, stored.host_ip, stored.ready, stored.phase, stored.restarts) == \
        ("10.244.0.5", "172.18.0.2", True, "Running", 2)
    assert stored.container_statuses == (RUNNING,)  # read back as written: no write next pass
    assert writer.reported(stored, _running()) and not writer.reported(stored, _running(ready=False))
    document = stored.to_manifest()["status"]
    assert document["containerStatuses"][0]["state"] == {"running": {"startedAt": "2026-12-07T10:00:00Z"}}
    assert [c["status"] for c in document["conditions"] if c["type"] in ("Ready", "Initialized")] == ["True", "True"]


def test_status_keeps_a_deletion_marked_meanwhile(store: SqliteStore, bound: Pod) -> None:
    delete.delete(store, "Pod", "default", "web")
    StatusWriter(store, "n1").write(bound, _running())
    current = resources.get(store, Pod, "default", "web")
    assert current is not None and current.terminating and not current.pod_ip


def test_status_of_a_pod_gone_is_not_written(store: SqliteStore, bound: Pod) -> None:
    resources.delete(store, bound)
    assert StatusWriter(store, "n1").write(bound, _running()) is None
    assert resources.get(store, Pod, "default", "web") is None


def test_events_come_from_the_kubelet_of_the_node(store: SqliteStore, bound: Pod) -> None:
    StatusWriter(store, "n1").event(bound, "Unhealthy", "Readiness probe failed", warning=True)
    (event,) = resources.list_kind(store, Event)[0]
    assert (event.involved, event.reason, event.type, event.source) == \
        (("Pod", "web"), "Unhealthy", "Warning", "kubelet n1")


def test_only_a_pod_marked_for_deletion_is_removed(store: SqliteStore, bound: Pod) -> None:
    status = StatusWriter(store, "n1")
    status.remove(bound)
    assert resources.get(store, Pod, "default", "web") is not None
    delete.delete(store, "Pod", "default", "web")
    status.remove(bound)
    assert resources.get(store, Pod, "default", "web") is None
    status.remove(bound)  # gone already: nothing to do


def test_pod_workers_run_one_piece_of_work_per_sandbox() -> None:
    workers = PodWorkers(4)
    release, ran = threading.Event(), []

    def slow(name: str) -> None:
        ran.append(name)
        release.wait(5)

    workers.submit("a", slow, "first")
    workers.submit("a", slow, "second")  # dropped: "a" has work in flight
    workers.submit("b", slow, "other")  # another sandbox's runs alongside
    deadline = time.monotonic() + 5
    while len(ran) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    assert sorted(ran) == ["first", "other"]


def test_a_failed_piece_of_work_frees_its_sandbox() -> None:
    workers, done = PodWorkers(1), threading.Event()

    def failing() -> None:
        raise PodnetError("CNI said no")

    workers.submit("a", failing)
    deadline = time.monotonic() + 5
    while not done.is_set() and time.monotonic() < deadline:
        workers.submit("a", done.set)  # dropped while the failure is in flight
        done.wait(0.01)
    assert done.is_set()


def test_sandbox_records_name_their_pod(tmp_path: Path) -> None:
    """The record is what an agent restarted after a crash reads: its format is a promise."""
    network = NetworkConfigList("podnet", "1.0.0", ({"type": "bridge"},))
    sandboxes = Sandboxes(tmp_path, network, "/unused", "/unused")
    (tmp_path / "pods" / "pn-lab.apps.web.json").write_text('{"pod": "apps/web"}')
    (tmp_path / "pods" / "pn-lab.apps.torn.json").write_text('{"pod": ')  # a crash mid-write
    assert sandboxes.recorded() == {"pn-lab.apps.web", "pn-lab.apps.torn"}
    assert sandboxes.pod_of("pn-lab.apps.web") == ("apps", "web")
    assert sandboxes.pod_of("pn-lab.apps.torn") is None
    assert sandboxes.pod_of("pn-lab.apps.never") is None
