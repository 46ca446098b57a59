"""A pod's row as kube-apiserver prints it: READY counts ready containers (and
started sidecars) of all, STATUS is the most telling reason (an init step,
a waiting or terminated container's reason, Terminating), RESTARTS counts them
with how long ago the last one was, and the wide columns say where it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podnet.apiserver.tables.age import Clock, parse_timestamp
from podnet.apiserver.tables.table import AGE, NAME, Cells, Column, Printer

TERMINAL_PHASES = ("Succeeded", "Failed")
NODE_LOST = "NodeLost"  # the reason the node lifecycle controller gives pods of an unreachable node

COLUMNS = (
    NAME,
    Column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", "The aggregate status of the containers in this pod."),
    Column("Restarts", "The number of times the containers in this pod have been restarted and when the last "
                       "container in this pod has restarted."),
    AGE,
    Column("IP", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet "
                 "allocated.", priority=1),
    Column("Node", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for "
                   "scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for "
                   "this node becomes responsible for the lifecycle of this pod. This field should not be used to "
                   "express a desire for the pod to be scheduled on a specific node. "
                   "https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename", priority=1),
    Column("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node, but it "
                             "cannot be scheduled right away as preemption victims receive their graceful termination "
                             "periods. This field does not guarantee that the pod will be scheduled on this node. "
                             "Scheduler may decide to place the pod elsewhere if other nodes become available sooner. "
                             "Scheduler may also decide to give the resources on this node to a higher priority pod "
                             "that is created after preemption. As a result, this field may be different than "
                             "PodSpec.nodeName when the pod is scheduled.", priority=1),
    Column("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready "
                              "when all its containers are ready AND all conditions specified in the readiness gates "
                              "have status equal to \"True\" More info: "
                              "https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates", priority=1),
)


class _Restarts:
    """Restarts counted, and when the latest was."""

    def __init__(self) -> None:
        self.count = 0
        self.latest: float | None = None

    def add(self, status: Mapping[str, Any]) -> None:
        self.count += status.get("restartCount") or 0
        finished = ((status.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        if finished:
            moment = parse_timestamp(finished)
            if self.latest is None or moment > self.latest:
                self.latest = moment

    def text(self, clock: Clock) -> str:
        """`3 (5m2s ago)`, or a bare `0`."""
        if self.count and self.latest is not None:
            return f"{self.count} ({clock.since_moment(self.latest)} ago)"
        return str(self.count)


class _Reading:
    """What the container statuses add up to: ready containers, and restarts of
    every init container and of the sidecars alone (the latter count once the
    pod is initialised)."""

    def __init__(self) -> None:
        self.ready = 0
        self.init_restarts = _Restarts()
        self.sidecar_restarts = _Restarts()


def _restartable(container: Mapping[str, Any] | None) -> bool:
    """A sidecar: an init container that keeps running beside the others."""
    return container is not None and container.get("restartPolicy") == "Always"


def _condition_true(status: Mapping[str, Any], kind: str) -> bool:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return condition.get("status") == "True"
    return False


def _ended(terminated: Mapping[str, Any], prefix: str) -> str:
    if terminated.get("reason"):
        return prefix + terminated["reason"]
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode') or 0}"


def _init_reason(spec: Mapping[str, Any], status: Mapping[str, Any], reading: _Reading) -> str | None:
    """The STATUS of a pod still initialising (`Init:1/2`, `Init:CrashLoopBackOff`),
    None once its init containers are through."""
    inits = spec.get("initContainers") or []
    by_name = {container.get("name"): container for container in inits}
    for index, container in enumerate(status.get("initContainerStatuses") or []):
        sidecar = _restartable(by_name.get(container.get("name")))
        reading.init_restarts.add(container)
        if sidecar:
            reading.sidecar_restarts.add(container)
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and not terminated.get("exitCode"):
            continue
        if sidecar and container.get("started"):
            reading.ready += container.get("ready") is True
            continue
        if terminated is not None:
            return _ended(terminated, "Init:")
        if waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            return "Init:" + waiting["reason"]
        return f"Init:{index}/{len(inits)}"
    return None


def _containers_reason(status: Mapping[str, Any], reason: str, reading: _Reading) -> str:
    """The first container's waiting or terminated reason (read from the last, so
    the first wins); counts ready, running ones."""
    running = False
    for container in reversed(status.get("containerStatuses") or []):
        reading.sidecar_restarts.add(container)
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting is not None and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated is not None:
            reason = _ended(terminated, "")
        elif container.get("ready") and state.get("running") is not None:
            running = True
            reading.ready += 1
    if reason == "Completed" and running:
        return "Running" if _condition_true(status, "Ready") else "NotReady"
    return reason


def pod_cells(pod: Mapping[str, Any], clock: Clock) -> Cells:
    metadata, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    conditions = status.get("conditions") or []
    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated" for c in conditions):
        reason = "SchedulingGated"
    total = len(spec.get("containers") or []) + sum(1 for c in spec.get("initContainers") or [] if _restartable(c))
    reading = _Reading()
    init_reason = _init_reason(spec, status, reading)
    restarts = reading.init_restarts
    if init_reason is not None:
        reason = init_reason
    if init_reason is None or _condition_true(status, "Initialized"):
        reason = _containers_reason(status, reason, reading)
        restarts = reading.sidecar_restarts  # the containers' own, added to the sidecars'
    if metadata.get("deletionTimestamp"):
        if status.get("reason") == NODE_LOST:
            reason = "Unknown"
        elif phase not in TERMINAL_PHASES:
            reason = "Terminating"
    ips = status.get("podIPs") or []
    return [metadata.get("name", ""), f"{reading.ready}/{total}", reason, restarts.text(clock),
            clock.since(metadata.get("creationTimestamp")),
            (ips[0].get("ip") if ips else status.get("podIP")) or "<none>", spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", _readiness_gates(spec, status)]


def _readiness_gates(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    gates = spec.get("readinessGates") or []
    if not gates:
        return "<none>"
    conditions = {}
    for condition in status.get("conditions") or []:
        conditions.setdefault(condition.get("type"), condition.get("status"))
    met = sum(1 for gate in gates if conditions.get(gate.get("conditionType")) == "True")
    return f"{met}/{len(gates)}"


def pod_conditions(pod: Mapping[str, Any]) -> list[dict[str, str]]:
    """A finished pod's row says so, as kube-apiserver's does."""
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return []


POD = Printer(COLUMNS, pod_cells, pod_conditions)
