"""A container's shim and what the kubelet reads back of it, without a sandbox:
the shim runs its command, logs its output in CRI's format, serves attach, and
says how it ended; the kubelet's phase follows Kubernetes' rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from podnet.agent.containers import ContainerKey, Containers, Instance
from podnet.agent.environment import ConfigError, container_env, expand, field_value
from podnet.agent.pods import PodController
from podnet.agent.streams import ShimAttachment
from podnet.model.container_status import ContainerState
from podnet.model.manifest import parse_resource
from podnet.model.pod import Pod
from podnet.store import resources
from podnet.store.sqlite import SqliteStore

KEY = ContainerKey("pn-lab.default.web", "web")


def shim(containers: Containers, tmp_path: Path, argv: list[str], **spec: object) -> subprocess.Popen[bytes]:
    """Instance 0 of KEY under a real shim, as Containers.start writes it (but
    in our own namespace)."""
    directory = containers.directory(KEY)
    directory.mkdir(parents=True)
    (directory / "0.spec.json").write_text(json.dumps({
        "argv": argv, "env": {"PATH": os.environ["PATH"], "GREETING": "hi"}, "workingDir": None,
        "log": str(tmp_path / "logs" / "0.log"), **spec}))
    return subprocess.Popen([sys.executable, "-m", "podnet.agent.shim", str(directory), "0"])


def ended(containers: Containers, timeout: float = 10) -> Instance:
    deadline = time.monotonic() + timeout
    while (instance := containers.inspect(KEY)) is None or instance.running:
        assert time.monotonic() < deadline, "the container did not end"
        time.sleep(0.02)
    return instance


def log_records(tmp_path: Path) -> list[tuple[str, str, str]]:
    lines = (tmp_path / "logs" / "0.log").read_text().splitlines()
    return [tuple(line.split(" ", 3)[1:]) for line in lines]  # type: ignore[misc]


def test_a_container_runs_logs_and_ends_with_its_exit_code(tmp_path: Path) -> None:
    containers = Containers(tmp_path)
    process = shim(containers, tmp_path, ["sh", "-c", "echo $GREETING; echo oops >&2; printf tail; sleep 0.3; exit 3"])
    time.sleep(0.1)
    assert containers.inspect(KEY).running  # type: ignore[union-attr]  # its shim holds the lock
    instance = ended(containers)
    process.wait(5)
    assert (instance.number, instance.state.kind, instance.state.exit_code, instance.state.reason) == \
        (0, "terminated", 3, "Error")
    assert instance.state.started_at and instance.state.finished_at
    assert log_records(tmp_path) == [("stdout", "F", "hi"), ("stderr", "F", "oops"), ("stdout", "P", "tail")]


def test_a_command_that_cannot_start_is_a_start_error(tmp_path: Path) -> None:
    containers = Containers(tmp_path)
    shim(containers, tmp_path, ["/no/such/command"]).wait(10)
    state = ended(containers).state
    assert (state.exit_code, state.reason) == (128, "StartError")
    assert state.message == 'exec: "/no/such/command": No such file or directory'


def test_a_working_directory_that_is_missing_is_a_start_error(tmp_path: Path) -> None:
    containers = Containers(tmp_path)
    shim(containers, tmp_path, ["true"], workingDir="/no/such/dir").wait(10)
    assert ended(containers).state.message == 'chdir to "/no/such/dir": No such file or directory'


def test_a_shim_gone_without_a_word_is_an_unknown_end(tmp_path: Path) -> None:
    containers = Containers(tmp_path)
    process = shim(containers, tmp_path, ["sleep", "30"])
    time.sleep(0.3)
    state = json.loads((containers.directory(KEY) / "0.state.json").read_text())
    process.kill()
    process.wait()
    os.kill(state["pid"], 9)
    assert ended(containers).state.reason == "ContainerStatusUnknown"


def test_attach_carries_stdin_in_and_output_out(tmp_path: Path) -> None:
    containers = Containers(tmp_path)
    process = shim(containers, tmp_path, ["cat"], stdin=True, stdinOnce=True)
    deadline = time.monotonic() + 10
    while not (containers.directory(KEY) / "0.sock").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    attached = ShimAttachment(containers.directory(KEY), 0)
    attached.write_stdin(b"hello\n")
    assert attached.read() == (1, b"hello\n")
    attached.close_stdin()  # stdinOnce: cat sees the end of its input
    assert attached.read() is None
    attached.close()
    process.wait(5)
    assert ended(containers).state.reason == "Completed"


def running(number: int = 0) -> Instance:
    return Instance(number, ContainerState("running"), None, {})


def exited(code: int) -> Instance:
    return Instance(0, ContainerState("terminated", "Completed" if code == 0 else "Error", exit_code=code), None, {})


def pod(policy: str = "Always", init: bool = False) -> Pod:
    spec = {"restartPolicy": policy, "containers": [{"name": "a"}, {"name": "b"}]}
    if init:
        spec["initContainers"] = [{"name": "setup", "command": ["true"]}]
    return parse_resource({"kind": "Pod", "metadata": {"name": "p"}, "spec": spec})  # type: ignore[return-value]


@pytest.mark.parametrize(("policy", "a", "b", "phase"), [
    ("Always", running(), None, "Pending"),  # one not started yet
    ("Always", running(), exited(0), "Running"),
    ("Always", exited(0), exited(1), "Running"),  # it will restart them
    ("OnFailure", exited(0), exited(0), "Succeeded"),
    ("OnFailure", exited(0), exited(2), "Running"),  # the failed one restarts
    ("Never", exited(0), exited(0), "Succeeded"),
    ("Never", exited(0), exited(1), "Failed"),
    ("Never", running(), exited(1), "Running"),  # until the last one ends
])
def test_phase_follows_kubelets_rules(policy: str, a: Instance | None, b: Instance | None, phase: str) -> None:
    assert PodController._phase(pod(policy), {"a": a, "b": b}) == phase


@pytest.mark.parametrize(("policy", "setup", "phase"), [
    ("Always", None, "Pending"), ("Always", running(), "Pending"), ("Always", exited(1), "Pending"),
    ("Never", exited(1), "Failed"), ("Never", exited(0), "Pending"),
])
def test_init_containers_hold_the_pod_pending(policy: str, setup: Instance | None, phase: str) -> None:
    assert PodController._phase(pod(policy, init=True), {"setup": setup, "a": None, "b": None}) == phase


def test_env_resolves_fields_configmaps_and_secrets(store: SqliteStore) -> None:
    for document in ({"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"mode": "fast"}},
                     {"kind": "Secret", "metadata": {"name": "sec"}, "data": {"token": "czNjcjN0"}}):
        resources.put(store, parse_resource(document))
    env = [{"name": "A", "value": "1"}, {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
           {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
           {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
           {"name": "MAYBE", "valueFrom": {"configMapKeyRef": {"name": "none", "key": "x", "optional": True}}}]
    web: Pod = parse_resource({"kind": "Pod", "metadata": {"name": "web", "labels": {"app": "w"}},  # type: ignore[assignment]
                               "spec": {"containers": [{"name": "c", "env": env}]}, "status": {"podIP": "10.244.0.9"}})
    got = container_env(store, web, web.containers[0], {})
    assert {k: got[k] for k in ("A", "NAME", "IP", "MODE", "TOKEN", "MAYBE")} == \
        {"A": "1", "NAME": "web", "IP": "10.244.0.9", "MODE": "fast", "TOKEN": "s3cr3t", "MAYBE": ""}
    assert field_value(web, "metadata.labels['app']") == "w"
    missing = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]
    broken: Pod = parse_resource({"kind": "Pod", "metadata": {"name": "b"},  # type: ignore[assignment]
                                  "spec": {"containers": [{"name": "c", "env": missing}]}})
    with pytest.raises(ConfigError, match="couldn't find key nope in ConfigMap default/cfg"):
        container_env(store, broken, broken.containers[0], {})


@pytest.mark.parametrize(("text", "expanded"), [
    ("$(A)", "1"), ("x-$(A)-$(B)", "x-1-two"), ("$(MISSING)", "$(MISSING)"), ("$$(A)", "$(A)"), ("$$", "$"),
    ("$(A", "$(A"), ("cost: $5", "cost: $5"), ("", ""),
])
def test_var_references_expand_as_kubelet_expands_them(text: str, expanded: str) -> None:
    assert expand(text, {"A": "1", "B": "two"}) == expanded


def test_env_values_refer_to_those_declared_before_them(store: SqliteStore) -> None:
    env = [{"name": "HOST", "value": "db"}, {"name": "URL", "value": "http://$(HOST):$(PORT)/"},
           {"name": "PORT", "value": "5432"}]
    web: Pod = parse_resource({"kind": "Pod", "metadata": {"name": "web"},  # type: ignore[assignment]
                               "spec": {"containers": [{"name": "c", "env": env}]}})
    assert container_env(store, web, web.containers[0], {})["URL"] == "http://db:$(PORT)/"  # PORT comes later
