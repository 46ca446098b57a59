"""`podnet policy`: what the cluster's NetworkPolicies allow, answered from the
store by the same evaluator the conformance tests trust."""

from __future__ import annotations

import ipaddress
import select
import sys
import time

import click

from podnet.cli.get import cluster_record, cluster_store, echo_row, print_table
from podnet.errors import PodnetError
from podnet.kernel.nflog import Logged, NflogReader, open_reader
from podnet.lab.names import member_namespace
from podnet.model.clusternetworkpolicy import ClusterNetworkPolicy
from podnet.model.namespace import Namespace
from podnet.model.networkpolicy import PROTOCOLS, NetworkPolicy
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.selector import service_selects
from podnet.model.service import Service
from podnet.policy.evaluator import Decision, Party, PolicyView, Verdict, evaluate
from podnet.policy.ruleset import DROPS_GROUP
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
    drop), as every node logs them: source and destination pods, port, protocol,
    and the policies that isolate the pod. Nothing is logged while nobody
    listens, so this shows what happens while it runs (at most 50 a second per
    node and direction)."""
    record = cluster_record(lab_name)
    with cluster_store(lab_name) as store:
        view = _read_view(store)
    names = {p.pod_ip: p.metadata.key for p in view.pods}
    readers = {node.metadata.name: open_reader(member_namespace(record.name, node.metadata.name), DROPS_GROUP)
               for node in view.nodes}
    widths = [10, 12, 22, 24, 10, 9, 30]
    rows: list[tuple[str, ...]] = []
    if follow:
        echo_row(DROP_COLUMNS, widths)
    deadline = None if follow else time.monotonic() + seconds
    try:
        while deadline is None or (left := deadline - time.monotonic()) > 0:
            for node, logged in _next_logged(readers, 1.0 if deadline is None else min(left, 1.0)):
                row = _drop_row(node, logged, names, view)
                if follow:
                    echo_row(row, widths)
                else:
                    rows.append(row)
    except KeyboardInterrupt:
        pass
    finally:
        for reader in readers.values():
            reader.close()
    if not follow:
        print_table(DROP_COLUMNS, rows, fixed=False)


def _next_logged(readers: dict[str, NflogReader], timeout: float) -> list[tuple[str, Logged]]:
    by_socket = {reader.sock: node for node, reader in readers.items()}
    ready, _, _ = select.select(list(by_socket), [], [], timeout)
    return [(by_socket[sock], logged) for sock in ready for logged in readers[by_socket[sock]].read(0)]


def _drop_row(node: str, logged: Logged, names: dict[str, str], view: PolicyView) -> tuple[str, ...]:
    """A logged packet as a row; a plain `drop ingress` is named by the policies
    isolating the pod, as the store has them."""
    verdict, _, rest = logged.prefix.partition(" ")
    direction, _, policies = rest.partition(" ")
    if not policies:
        isolated = view.party(logged.destination if direction == "ingress" else logged.source).pod
        found = view.selecting(isolated, direction.capitalize()) if isolated is not None else []
        policies = ", ".join(p.metadata.key for p in found) or "?"
    port = f":{logged.port}" if logged.port is not None else ""
    return (time.strftime("%H:%M:%S", time.localtime(logged.at)), node, names.get(logged.source, logged.source),
            f"{names.get(logged.destination, logged.destination)}{port}", logged.protocol,
            "audit" if verdict == "audit" else "dropped", f"{policies} ({direction})")


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
    origin = _party(view, source, namespace)
    answers = [(destination, destination_port, evaluate(view, origin, destination, destination_port, protocol))
               for destination, destination_port in _destinations(view, services, where, namespace, port, protocol)]
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
    """A pod (`name`, `ns/name`, `pod/name`, `ns/pod/name`), `node/NAME` or an address."""
    if _is_address(word):
        return view.party(word)
    parts = [part for i, part in enumerate(word.split("/")) if not (i < 2 and part in ("pod", "pods", "po"))]
    if len(parts) == 2 and parts[0] in ("node", "nodes", "no"):
        for address, node in view.node_addresses.items():
            if node == parts[1]:
                return Party(ipaddress.ip_address(address), None, node)
        raise CheckError(f"no node {parts[1]} with an address (see `podnet get nodes`)")
    if len(parts) > 2 or not all(parts):
        raise CheckError(f"{word!r} is not a pod (name or namespace/name), node/NAME or an IP address")
    key = "/".join(parts) if len(parts) == 2 else f"{namespace}/{parts[0]}"
    for pod in view.pods:
        if pod.metadata.key == key:
            return view.of_pod(pod)
    raise CheckError(f"no pod {key} with an IP (see `podnet get pods -A`)")


def _destinations(view: PolicyView, services: list[Service], word: str, namespace: str, port: int | None,
                  protocol: str) -> list[tuple[Party, int | None]]:
    """The pods a connection to `word` ends at: one, or a Service's endpoints with their target ports."""
    service = _service(services, word, namespace)
    if service is None:
        return [(_party(view, word, namespace), port)]
    chosen = [p for p in service.ports if p.port == port and p.protocol == protocol] if port is not None else []
    if not chosen:
        raise CheckError(f"service {service.metadata.key} has no port {port}/{protocol}")
    found = []
    for pod in view.pods:
        selected = service_selects(service.selector, pod.metadata.labels)
        if pod.metadata.namespace == service.metadata.namespace and selected:
            target = pod.port_number(chosen[0].target_port)
            if target is not None:
                found.append((view.of_pod(pod), target))
    if not found:
        raise CheckError(f"service {service.metadata.key} has no endpoint pods for port {port}/{protocol}")
    return found


def _service(services: list[Service], word: str, namespace: str) -> Service | None:
    if _is_address(word):
        return next((s for s in services if s.cluster_ip == word), None)
    parts = word.split("/")
    if len(parts) == 2 and parts[0] in ("svc", "service", "services"):
        key = f"{namespace}/{parts[1]}"
    elif len(parts) == 3 and parts[1] in ("svc", "service", "services"):
        key = f"{parts[0]}/{parts[2]}"
    else:
        return None
    service = next((s for s in services if s.metadata.key == key), None)
    if service is None:
        raise CheckError(f"no service {key}")
    return service


def _is_address(word: str) -> bool:
    try:
        ipaddress.ip_address(word)
    except ValueError:
        return False
    return True


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
