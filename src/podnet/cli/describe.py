"""`podnet describe KIND NAME`: one object in kubectl's words, with what
surrounds it (a pod's node and owner, a service's endpoints, a deployment's
replicas) and its recent events, all read through the lab's API. The rendering
is pure: text from objects."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import click

from podnet.api import events as event_log
from podnet.apiserver.client import ApiClient
from podnet.cli.tables import ready_endpoints
from podnet.cli.words import kind_and_name, kind_of, scope
from podnet.controller.deployments import owned
from podnet.lab.client import cluster_api
from podnet.model.deployment import TEMPLATE_HASH, Deployment
from podnet.model.endpointslice import EndpointSlice, by_service
from podnet.model.event import Event
from podnet.model.manifest import Resource, parse_resource
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.probe import Probe
from podnet.model.service import Service

DESCRIBED = ("Pod", "Service", "Deployment", "Node")
KEY_WIDTH = 24  # where values start: past the longest key (RollingUpdateStrategy)


@dataclass
class Surroundings:
    """What a description needs besides the object itself."""

    pods: list[Pod]
    slices: list[EndpointSlice]
    events: list[Event]
    now: float


class Text:
    """kubectl's layout: `Key:  value` lines, values aligned, nested sections indented."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def field(self, key: str, value: object, indent: int = 0) -> None:
        self.lines.append(f"{' ' * indent}{key + ':':<{KEY_WIDTH - indent}}{value}")

    def mapping(self, key: str, values: dict[str, str]) -> None:
        pairs = [f"{k}={v}" for k, v in sorted(values.items())] or ["<none>"]
        self.field(key, pairs[0])
        self.lines += [f"{'':{KEY_WIDTH}}{pair}" for pair in pairs[1:]]

    def line(self, text: str) -> None:
        self.lines.append(text)

    def table(self, rows: list[tuple[str, ...]], indent: int = 2) -> None:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.lines.append(" " * indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())

    def __str__(self) -> str:
        return "\n".join(self.lines) + "\n"


def describe_object(resource: Resource, around: Surroundings) -> str:
    text = Text()
    meta = resource.metadata
    text.field("Name", meta.name)
    if meta.namespace:
        text.field("Namespace", meta.namespace)
    if isinstance(resource, Pod):
        _pod(text, resource)
    elif isinstance(resource, Service):
        _service(text, resource, around)
    elif isinstance(resource, Deployment):
        _deployment(text, resource, around)
    elif isinstance(resource, Node):
        _node(text, resource, around)
    _events(text, event_log.about(around.events, resource.kind, meta.namespace, meta.name), around.now)
    return str(text)


def _pod(text: Text, pod: Pod) -> None:
    text.field("Node", f"{pod.node_name}/{pod.host_ip}" if pod.node_name and pod.host_ip else pod.node_name or "<none>")
    text.mapping("Labels", pod.metadata.labels)
    text.mapping("Annotations", pod.metadata.annotations)
    text.field("Status", "Terminating" if pod.terminating else pod.phase)
    if pod.reason:
        text.field("Reason", pod.reason)
    text.field("IP", pod.pod_ip or "<none>")
    if pod.pod_ips:
        text.line("IPs:")
        for ip in pod.pod_ips:  # as kubectl lists them
            text.field("IP", ip, indent=2)
    else:
        text.field("IPs", "<none>")
    if pod.metadata.owner:
        text.field("Controlled By", "/".join(pod.metadata.owner))
    text.line("Containers:")
    statuses = {s.name: s for s in pod.container_statuses}
    for container in pod.containers:
        text.line(f"  {container.name}:")
        text.field("Image", container.image or "<none>", 4)
        text.field("Command", " ".join(container.command + container.args) or "podnet echo server", 4)
        ports = ", ".join(f"{p.container_port}/{p.protocol}" for p in container.ports)
        text.field("Port", ports or "<none>", 4)
        if container.readiness:
            text.field("Readiness", _probe(container.readiness), 4)
        status = statuses.get(container.name)
        if status is not None:
            text.field("State", status.state.kind.capitalize() + (f" ({status.state.reason})"
                                                                  if status.state.reason else ""), 4)
            if status.state.exit_code is not None:
                text.field("Exit Code", status.state.exit_code, 4)
        text.field("Ready", str(bool(status and status.ready)), 4)
        text.field("Restart Count", status.restart_count if status else 0, 4)
    text.line("Conditions:")
    text.table([("Type", "Status"), ("PodScheduled", str(bool(pod.node_name))), ("Ready", str(pod.ready))])


def _probe(probe: Probe) -> str:
    action = {"exec": f"exec [{' '.join(probe.command)}]", "tcpSocket": f"tcp-socket :{probe.port}",
              "httpGet": f"http-get http://:{probe.port}{probe.path}"}[probe.action]
    return (f"{action} delay={probe.initial_delay:g}s timeout={probe.timeout:g}s period={probe.period:g}s "
            f"#success={probe.success_threshold} #failure={probe.failure_threshold}")


def _service(text: Text, service: Service, around: Surroundings) -> None:
    text.mapping("Labels", service.metadata.labels)
    text.mapping("Selector", service.selector)
    text.field("Type", service.type)
    if service.ip_family_policy:
        text.field("IP Family Policy", service.ip_family_policy)
    if service.ip_families:
        text.field("IP Families", ",".join(service.ip_families))
    text.field("IP", service.cluster_ip or "<none>")
    text.field("IPs", ",".join(service.cluster_ips) or "<none>")
    if service.external_name:
        text.field("External Name", service.external_name)
    mine = by_service(around.slices).get((service.metadata.namespace, service.metadata.name), [])
    for port in service.ports:
        text.field("Port", f"{port.name or '<unset>'}  {port.port}/{port.protocol}")
        text.field("TargetPort", f"{port.target_port}/{port.protocol}")
        if port.node_port:
            text.field("NodePort", f"{port.name or '<unset>'}  {port.node_port}/{port.protocol}")
        numbers = {p.port for s in mine for p in s.ports if p.name == port.name and p.protocol == port.protocol}
        found = [e for e in ready_endpoints(mine) if int(e.rsplit(":", 1)[1]) in numbers]
        text.field("Endpoints", ",".join(found) or "<none>")
    text.field("Session Affinity", "ClientIP" if service.session_affinity_seconds else "None")


def _deployment(text: Text, deployment: Deployment, around: Surroundings) -> None:
    text.mapping("Labels", deployment.metadata.labels)
    text.field("Selector", ",".join(f"{k}={v}" for k, v in deployment.selector.match_labels) or "<none>")
    live = [p for p in owned(deployment, around.pods) if not p.terminating]
    updated = [p for p in live if p.metadata.labels.get(TEMPLATE_HASH) == deployment.template_hash]
    available = sum(1 for p in live if p.ready)
    text.field("Replicas", f"{deployment.replicas} desired | {len(updated)} updated | {len(live)} total | "
                           f"{available} available | {len(live) - available} unavailable")
    text.field("StrategyType", "RollingUpdate")
    text.field("RollingUpdateStrategy",
               f"{deployment.max_unavailable} max unavailable, {deployment.max_surge} max surge")
    text.line("Pod Template:")
    text.mapping("  Labels", deployment.template.metadata.labels)
    text.field("  Command", " ".join(deployment.template.command) or "podnet echo server")
    text.line("Pods:")
    rows = [("NAME", "READY", "NODE", "IP")] + [
        (p.metadata.name, f"{sum(s.ready for s in p.container_statuses)}/{len(p.containers)}", p.node_name or "<none>", p.pod_ip or "<none>") for p in live]
    text.table(rows)


def _node(text: Text, node: Node, around: Surroundings) -> None:
    text.mapping("Labels", node.metadata.labels)
    text.line("Conditions:")
    text.table([("Type", "Status"), ("Ready", str(node.ready))])
    text.line("Addresses:")
    for ip in node.internal_ips or ("<none>",):
        text.line(f"  InternalIP:  {ip}")
    text.field("PodCIDR", node.pod_cidr or "<none>")
    text.field("PodCIDRs", ",".join(node.pod_cidrs) or "<none>")
    text.field("Agent Restarts", node.agent_restarts)
    here = [p for p in around.pods if p.node_name == node.metadata.name]
    text.line(f"Non-terminated Pods:  ({len(here)} in total)")
    if here:
        text.table([("Namespace", "Name", "IP")] + [(p.metadata.namespace, p.metadata.name, p.pod_ip or "<none>")
                                                   for p in here])


def _events(text: Text, events: list[Event], now: float) -> None:
    if not events:
        text.field("Events", "<none>")
        return
    text.line("Events:")
    rows = [("Type", "Reason", "Age", "From", "Message"), ("----", "------", "----", "----", "-------")]
    rows += [(e.type, e.reason, _age(now - e.time), e.source, e.message) for e in events[-EVENTS_SHOWN:]]
    text.table(rows)


EVENTS_SHOWN = 20


def _age(seconds: float) -> str:
    """kubectl's short ages: 45s, 3m12s, 2h5m."""
    seconds = max(int(seconds), 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60}m"


@click.command()
@click.argument("target")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--lab", "lab_name", help="The lab, when several are up.")
def describe(target: str, name: str | None, namespace: str, lab_name: str | None) -> None:
    """Show one pod, service, deployment or node in detail, with its recent events."""
    kind, name = kind_and_name(target, name)
    if kind.name not in DESCRIBED:
        raise click.BadParameter(f"podnet describes {', '.join(k.lower() + 's' for k in DESCRIBED)}; not {kind.plural}",
                                 param_hint="KIND")
    with cluster_api(lab_name) as api:
        found = parse_resource(api.get(kind, scope(kind, namespace), name))
        around = Surroundings(_listed(api, "pods"), _listed(api, "endpointslices"), _listed(api, "events"),
                              time.time())
    click.echo(describe_object(found, around), nl=False)


def _listed(api: ApiClient, word: str) -> list[Any]:
    """Every object of a kind, in every namespace, as typed resources."""
    return [parse_resource(item) for item in api.list(kind_of(word), None).get("items") or []]
