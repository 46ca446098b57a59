"""Rows of the core kinds with no controller logic in their columns: namespaces,
nodes (Ready or not, cordoned, roles from labels), config maps, secrets, service
accounts, leases, and events (core/v1 and events.k8s.io/v1 alike)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podnet.apiserver.tables.age import Clock
from podnet.apiserver.tables.table import AGE, NAME, NAME_DESCRIPTION, Cells, Column, Printer, name_and_age

ROLE_PREFIX = "node-role.kubernetes.io/"
ROLE_LABEL = "kubernetes.io/role"


def _namespace(obj: Mapping[str, Any], clock: Clock) -> Cells:
    name, age = name_and_age(obj, clock)
    return [name, (obj.get("status") or {}).get("phase", ""), age]


NAMESPACE = Printer((NAME, Column("Status", "The status of the namespace"), AGE), _namespace)


def node_roles(labels: Mapping[str, str]) -> str:
    """From `node-role.kubernetes.io/<role>` keys and a `kubernetes.io/role` value, sorted."""
    roles = {key.removeprefix(ROLE_PREFIX) for key in labels if key.startswith(ROLE_PREFIX) and key != ROLE_PREFIX}
    if labels.get(ROLE_LABEL):
        roles.add(labels[ROLE_LABEL])
    return ",".join(sorted(roles)) or "<none>"


def node_status(node: Mapping[str, Any]) -> str:
    """`Ready`, `NotReady` or `Unknown`, and `,SchedulingDisabled` when cordoned."""
    ready = [c.get("status") for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"]
    words = ["Ready" if ready[-1] == "True" else "NotReady"] if ready else ["Unknown"]
    if (node.get("spec") or {}).get("unschedulable"):
        words.append("SchedulingDisabled")
    return ",".join(words)


def _address(node: Mapping[str, Any], kind: str) -> str:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == kind:
            return address.get("address", "")
    return "<none>"


def _node(node: Mapping[str, Any], clock: Clock) -> Cells:
    name, age = name_and_age(node, clock)
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return [name, node_status(node), node_roles((node.get("metadata") or {}).get("labels") or {}), age,
            info.get("kubeletVersion", ""), _address(node, "InternalIP"), _address(node, "ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


_ADDRESSES = (
    "List of addresses reachable to the node. Queried from cloud provider, if available. More info: "
    "https://kubernetes.io/docs/reference/node/node-status/#addresses")
NODE = Printer((
    NAME,
    Column("Status", "The status of the node"),
    Column("Roles", "The roles of the node"),
    AGE,
    Column("Version", "Kubelet Version reported by the node."),
    Column("Internal-IP", _ADDRESSES, priority=1),
    Column("External-IP", _ADDRESSES, priority=1),
    Column("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
           priority=1),
    Column("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
           priority=1),
    Column("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API "
                                "(e.g. containerd://1.4.2).", priority=1),
), _node)


def _config_map(obj: Mapping[str, Any], clock: Clock) -> Cells:
    name, age = name_and_age(obj, clock)
    return [name, len(obj.get("data") or {}) + len(obj.get("binaryData") or {}), age]


CONFIG_MAP = Printer((NAME, Column("Data", "Data contains the configuration data."), AGE), _config_map)


def _secret(obj: Mapping[str, Any], clock: Clock) -> Cells:
    name, age = name_and_age(obj, clock)
    return [name, obj.get("type", ""), len(obj.get("data") or {}), age]


SECRET = Printer((
    NAME,
    Column("Type", "Used to facilitate programmatic handling of secret data. More info: "
                   "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"),
    Column("Data", "Data contains the secret data."),
    AGE,
), _secret)


def _service_account(obj: Mapping[str, Any], clock: Clock) -> Cells:
    name, age = name_and_age(obj, clock)
    return [name, len(obj.get("secrets") or []), age]


SERVICE_ACCOUNT = Printer((
    NAME,
    Column("Secrets", "Secrets is a list of the secrets in the same namespace that pods running using this "
                      "ServiceAccount are allowed to use."),
    AGE,
), _service_account)


def _lease(obj: Mapping[str, Any], clock: Clock) -> Cells:
    name, age = name_and_age(obj, clock)
    return [name, (obj.get("spec") or {}).get("holderIdentity") or "", age]


LEASE = Printer((NAME, Column("Holder", "holderIdentity contains the identity of the holder of a current lease."),
                 AGE), _lease)


def _core_event(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """An events.k8s.io/v1 Event under core/v1's field names, as kube-apiserver
    reads both through one internal type."""
    if not str(event.get("apiVersion", "")).startswith("events.k8s.io/"):
        return event
    return {**event, "involvedObject": event.get("regarding") or {}, "message": event.get("note", ""),
            "firstTimestamp": event.get("deprecatedFirstTimestamp"),
            "lastTimestamp": event.get("deprecatedLastTimestamp"),
            "count": event.get("deprecatedCount") or 0, "source": event.get("deprecatedSource") or {}}


def _event(obj: Mapping[str, Any], clock: Clock) -> Cells:
    event = _core_event(obj)
    first = clock.since(event.get("firstTimestamp") or event.get("eventTime"))
    last = clock.since(event.get("lastTimestamp")) if event.get("lastTimestamp") else first
    series = event.get("series")
    count = event.get("count") or 1  # a singleton event of the new API has no count
    if series is not None:
        last, count = clock.since(series.get("lastObservedTime")), series.get("count") or 0
    involved = event.get("involvedObject") or {}
    target = str(involved.get("kind", "")).lower()
    if involved.get("name"):
        target = f"{target}/{involved['name']}"
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingController") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    return [last, event.get("type", ""), event.get("reason", ""), target, involved.get("fieldPath", ""),
            f"{component}, {instance}" if instance else component, str(event.get("message", "")).strip(), first,
            count, (event.get("metadata") or {}).get("name", "")]


EVENT = Printer((
    Column("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    Column("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
    Column("Reason", "This should be a short, machine understandable string that gives the reason for the "
                     "transition into the object's current status."),
    Column("Object", "The object that this event is about."),
    Column("Subobject", "If referring to a piece of an object instead of an entire object, this string should "
                        "contain a valid JSON/Go field access statement, such as "
                        "desiredState.manifest.containers[2].", priority=1),
    Column("Source", "The component reporting this event. Should be a short machine understandable string.",
           priority=1),
    Column("Message", "A human-readable description of the status of this operation."),
    Column("First Seen", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
           priority=1),
    Column("Count", "The number of times this event has occurred.", priority=1),
    Column("Name", NAME_DESCRIPTION, format="name", priority=1),
), _event)
