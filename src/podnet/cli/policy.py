"""`podnet policy`: what the cluster's NetworkPolicies allow, answered from the
store by the same evaluator the conformance tests trust."""

from __future__ import annotations

import ipaddress
import sys
import time

import click

from podnet.cli.columns import echo_row, print_table
from podnet.lab.client import cluster_store, flow_merger
from podnet.errors import PodnetError
from podnet.model import targets
from podnet.model.clusternetworkpolicy import ClusterNetworkPolicy
from podnet.model.endpointslice import EndpointSlice, by_service
from podnet.model.namespace import Namespace
from podnet.model.networkpolicy import PROTOCOLS, NetworkPolicy
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.model.targets import Reference
from podnet.observe.flows import AUDIT, DROPPED, Flow
from podnet.policy.evaluator import Decision, Party, PolicyView, Verdict, evaluate
from podnet.store import resources
from podnet.store.base import Store


class CheckError(PodnetError):
    """A FROM or TO that names nothing in the cluster."""


DROP_COLUMNS = ("TIME", "NODE", "SOURCE", "DESTINATION", "PROTOCOL", "VERDICT", "POLICIES")


@click.group()
def policy() -> None:
    """NetworkPolicy: check what is allowed, and watch what is dropped."""


@policy.command()
@click.option("-f", "--follow", is_flag=True, help="Print each drop as it happens, until interrupted.")
@click.option("--seconds", default=5.0, show_default=True, help="Without -f: how long to listen.")
@click.option("--lab", "lab_name", help="The lab to watch, when several are up.")
def drops(follow: bool, seconds: float, lab_name: str | None) -> None:
    """New connections NetworkPolicies drop (and policies in audit mode would
    drop), as every node records them: source and destination pods, port,
    protocol, and the policies that isolate the pod. Shows what happens while
    it runs (at most 50 a second per node and direction are logged); `podnet
    observe --verdict dropped` shows what happened before."""
    merger = flow_merger(lab_name)
    merger.poll(limit=1)  # from now on
    widths = [10, 12, 22, 24, 10, 9, 30]
    rows: list[tuple[str, ...]] = []
    if follow:
        echo_row(DROP_COLUMNS, widths)
    deadline = None if follow else time.monotonic() + seconds
    try:
        while deadline is None or deadline - time.monotonic() > 0:
            time.sleep(0.25 if deadline is None else max(0.0, min(0.25, deadline - time.monotonic())))
            for flow in merger.poll():
                if flow.verdict not in (DROPPED, AUDIT) or not flow.reason.startswith("policy"):
                    continue
                row = _drop_row(flow)
                if follow:
                    echo_row(row, widths)
                else:
                    rows.append(row)
    except KeyboardInterrupt:
        pass
    if not follow:
        print_table(DROP_COLUMNS, rows)


def _drop_row(flow: Flow) -> tuple[str, ...]:
    port = f":{flow.destination_port}" if flow.destination_port is not None else ""
    return (time.strftime("%H:%M:%S", time.localtime(flow.time)), flow.node, flow.source_pod or flow.source,
            f"{flow.destination_pod or flow.destination}{port}", flow.protocol,
            "audit" if flow.verdict == AUDIT else "dropped", flow.policy)


@policy.command()
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO:PORT[/PROTO]")
@click.option("--lab", "lab_name", help="The lab to read, when several are up.")
@click.option("-n", "--namespace", default="default", show_default=True,
              help="The namespace of pods named without one.")
def check(source: str, target: str, lab_name: str | None, namespace: str) -> None:
    """Whether FROM may open a connection to TO on PORT, and which policies and
    rules decide. FROM and TO are pods (`name` or `ns/name`), `node/NAME`, an IP
    address, or for TO a Service (`svc/name`, `ns/svc/name` or its ClusterIP),
    which is judged at each endpoint pod, as the kernel judges it after DNAT.
    PROTO is TCP (the default), UDP, SCTP or ICMP. Exit status 0 when every
    answer is allowed, 1 otherwise."""
    where, port, protocol = _split_target(target)
    with cluster_store(lab_name) as store:
        view = _read_view(store)
        services = resources.list_kind(store, Service)[0]
        slices = resources.list_kind(store, EndpointSlice)[0]
    origin = _party(view, source, namespace)
    answers = [(destination, destination_port, evaluate(view, origin, destination, destination_port, protocol))
               for destination, destination_port in _destinations(view, services, slices, where, namespace, port,
                                                                     protocol)]
    for destination, destination_port, verdict in answers:
        _print(origin, destination, destination_port, protocol, verdict)
    sys.exit(0 if all(verdict.allowed for _, _, verdict in answers) else 1)


def _read_view(store: Store) -> PolicyView:
    return PolicyView(resources.list_kind(store, Pod)[0], resources.list_kind(store, Namespace)[0],
                      resources.list_kind(store, NetworkPolicy)[0], resources.list_kind(store, Node)[0],
                      resources.list_kind(store, ClusterNetworkPolicy)[0])


def _split_target(target: str) -> tuple[str, int | None, str]:
    """`TO:PORT[/PROTO]`, or `TO/ICMP` (ICMP has no ports)."""
    if target.upper().endswith("/ICMP"):
        return target[:-len("/ICMP")], None, "ICMP"
    where, _, rest = target.rpartition(":")
    port_text, _, protocol = rest.partition("/")
    protocol = (protocol or "TCP").upper()
    if protocol not in PROTOCOLS:
        raise click.BadParameter(f"{protocol!r} is not TCP, UDP, SCTP or ICMP", param_hint="TO:PORT[/PROTO]")
    if not where or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise click.BadParameter(f"{target!r} is not TO:PORT[/PROTO] with a port 1-65535", param_hint="TO:PORT[/PROTO]")
    return where, int(port_text), protocol


def _party(view: PolicyView, word: str, namespace: str) -> Party:
    """A pod, a node or an address; a Service is only ever a destination."""
    return _party_of(view, targets.parse(word, namespace), word)


def _party_of(view: PolicyView, reference: Reference, word: str) -> Party:
    if reference.kind == "address":
        return view.party(reference.name)
    if reference.kind == Node.kind:
        for address, node in view.node_addresses.items():
            if node == reference.name:
                return Party(ipaddress.ip_address(address), None, node)
        raise CheckError(f"no node {reference.name} with an address (see `podnet get nodes`)")
    if reference.kind != Pod.kind:
        raise CheckError(f"{word!r} is not a pod (name or namespace/name), node/NAME or an IP address")
    for pod in view.pods:
        if pod.metadata.key == reference.key:
            return view.of_pod(pod)
    raise CheckError(f"no pod {reference.key} with an IP (see `podnet get pods -A`)")


def _destinations(view: PolicyView, services: list[Service], slices: list[EndpointSlice], word: str,
                  namespace: str, port: int | None, protocol: str) -> list[tuple[Party, int | None]]:
    """Where a connection to `word` ends: one party, or a Service's endpoints (as
    its EndpointSlices list them, like the proxy) with their target ports."""
    reference = targets.parse(word, namespace)
    if reference.kind == "address":
        service = next((s for s in services if s.cluster_ip == reference.name), None)
    elif reference.kind == Service.kind:
        service = next((s for s in services if s.metadata.key == reference.key), None)
        if service is None:
            raise CheckError(f"no service {reference.key}")
    else:
        service = None
    if service is None:
        return [(_party_of(view, reference, word), port)]
    chosen = [p for p in service.ports if p.port == port and p.protocol == protocol] if port is not None else []
    if not chosen:
        raise CheckError(f"service {service.metadata.key} has no port {port}/{protocol}")
    found = []
    for endpoint_slice in by_service(slices).get((service.metadata.namespace, service.metadata.name), []):
        target = next((p.port for p in endpoint_slice.ports if p.name == chosen[0].name
                       and p.protocol == protocol), None)
        if target is not None:
            found += [(view.party(e.address), target) for e in endpoint_slice.endpoints if e.ready]
    if not found:
        raise CheckError(f"service {service.metadata.key} has no ready endpoints for port {port}/{protocol}")
    return found


def _print(origin: Party, destination: Party, port: int | None, protocol: str, verdict: Verdict) -> None:
    where = f"{destination}:{port}/{protocol}" if port is not None else f"{destination} ({protocol})"
    click.echo(f"{'allowed' if verdict.allowed else 'denied'}: {origin} -> {where}")
    decisions = [d for d in (verdict.egress, verdict.ingress) if d is not None]
    if not decisions:
        click.echo(f"  {verdict.why}")
    for decision, who in ((verdict.egress, origin), (verdict.ingress, destination)):
        if decision is not None:
            click.echo(f"  {decision.direction.lower()} of {who}: {_describe(decision)}")


def _describe(decision: Decision) -> str:
    if not decision.isolated:
        return "not isolated (no policy selects it)"
    if decision.allowed:
        return f"allowed by {', '.join(decision.because)}"
    if decision.because[0].startswith("cnp/"):
        return f"denied by {decision.because[0]}"
    return f"denied: isolated by {', '.join(decision.because)} and no rule of theirs matches"
