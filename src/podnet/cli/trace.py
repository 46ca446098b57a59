"""`podnet trace`: a packet's path through the cluster, step by step, computed
from the store as each node's agent renders its tables and routes."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from podnet.store.snapshot import Snapshot
from podnet.api import cluster
from podnet.lab.client import cluster_record, cluster_store
from podnet.lab.names import member_namespace, pod_namespace
from podnet.lab.plan import INTERNET_IPS as INTERNET
from podnet.model.families import IPV4, IPV6, family_of
from podnet.trace.ends import EndError, source_end, target
from podnet.trace.path import End, PathTracer, Trace

if TYPE_CHECKING:  # the live trace (and pyroute2 under it) is imported only for --live
    from podnet.trace.live import LiveTrace

_COLOURS = {"deliver": "green", "leave": "green", "accept": "green", "drop": "red", "reject": "red"}


@click.command("trace")
@click.argument("source", metavar="FROM")
@click.argument("destination", metavar="TO[:PORT]")
@click.option("--proto", "protocol", type=click.Choice(["tcp", "udp", "icmp"]), default="tcp", show_default=True)
@click.option("-n", "--namespace", default="default", show_default=True, help="The namespace of names without one.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--lab", "lab_name", help="The lab to read, when several are up.")
@click.option("-4", "family", flag_value=IPV4, help="To TO's IPv4 address (a dual-stack pod, node or Service).")
@click.option("-6", "family", flag_value=IPV6, help="To TO's IPv6 address (by default, TO's primary family's).")
@click.option("--live", is_flag=True, help="Also send one real packet, marked for the kernel's trace on every node, "
                                           "and show the chains and rules it hit beside the computed path.")
def trace_command(source: str, destination: str, protocol: str, namespace: str, output: str,
                  lab_name: str | None, family: str | None, live: bool) -> None:
    """Where a new connection from FROM to TO goes, one numbered step per decision:
    the route and bridge it leaves by, host-gw or VXLAN, a Service's DNAT (every
    endpoint it may pick, each a path of its own), masquerade, NetworkPolicy,
    and the delivery or the drop, each naming the object that decided. FROM and
    TO are pods (`name`, `ns/name`), `node/NAME`, an IP address or `internet`;
    TO may be a Service (`svc/NAME`, `ns/svc/NAME`); an IPv6 address with a port
    is `[ADDRESS]:PORT`. On a dual-stack cluster the packet is of TO's primary
    family, or of the one -4 or -6 asks for, and FROM sends it from its address
    of that family. Nothing is sent, unless
    --live. Exit status 0 when every path delivers (with --live: when the
    packet was delivered and the kernel's trace agrees with a computed path; 2
    when they disagree)."""
    record = cluster_record(lab_name)
    with cluster_store(lab_name) as store:
        snapshot = Snapshot.read(store)
        config = cluster.load(store)
    tracer = PathTracer(snapshot, config)
    end = target(tracer, snapshot.services, destination, namespace, protocol, INTERNET, family)
    start = source_end(tracer, source, namespace, INTERNET, family_of(end.end.address))
    result = tracer.trace(start, end.end, end.port, protocol)
    if not live:
        if output == "json":
            click.echo(json.dumps(result.to_json(), indent=2))
        else:
            print_trace(result)
        sys.exit(0 if result.delivered else 1)
    from podnet.trace.live import agreement, run_live

    nodes = {name: member_namespace(record.name, name) for name in tracer.nodes}
    addresses = {address for name in tracer.nodes for address in tracer.local_addresses(name)}
    report = run_live(result, nodes, _namespace_of(record.name, start), addresses)
    path, differences = agreement(result, report)
    if output == "json":
        click.echo(json.dumps({**result.to_json(), "live": _live_json(report, path, differences)}, indent=2))
    else:
        print_trace(result)
        print_live(report, path, differences, len(result.paths()))
    delivered = all(r.verdict == "accept" for r in report.reports) and bool(report.reports)
    sys.exit(2 if differences else 0 if delivered else 1)


def _namespace_of(lab: str, start: End) -> str:
    """Where the live packet is sent from."""
    if start.pod is not None:
        return pod_namespace(lab, start.pod.metadata.namespace, start.pod.metadata.name)
    if start.node is not None:
        return member_namespace(lab, start.node)
    if start.address in INTERNET:
        return member_namespace(lab, "internet")
    raise EndError(f"--live sends from a pod, a node or the internet, not from {start.address}")


def print_live(report: LiveTrace, path: int | None, differences: list[str], paths: int) -> None:
    from podnet.trace.live import TABLE as TRACE_TABLE

    click.echo(f"live: {report.sent}")
    for node_report in report.reports:
        for event in node_report.events:  # the rules that matched (all of them are in -o json)
            if event.kind != "rule" or event.handle is None or event.table == TRACE_TABLE.name:
                continue
            verdict = click.style(event.verdict or "", fg=_COLOURS.get(event.verdict.split(" ")[0]))
            click.echo(f"     [{node_report.node}] {event.table}/{event.chain}: {node_report.text(event)}  {verdict}")
        click.echo(f"     [{node_report.node}] {click.style(node_report.verdict, bold=True)}")
    if not report.reports:
        click.echo("     no node reported the packet")
    if differences:
        click.echo(click.style("the kernel's trace differs from the computed path:", fg="red"))
        for line in differences:
            click.echo(f"     {line}")
    else:
        which = f"path {path} of {paths}" if path else "the computed path"
        click.echo(click.style(f"the kernel's trace agrees with {which}", fg="green"))


def _live_json(report: LiveTrace, path: int | None, differences: list[str]) -> dict[str, object]:
    return {"sent": report.sent, "path": path, "agrees": not differences, "differences": differences,
            "nodes": [{"node": r.node, "verdict": r.verdict,
                       "events": [{**asdict(e), "rule": r.text(e)} for e in r.events]} for r in report.reports]}


def print_trace(result: Trace) -> None:
    port = f":{result.port}" if result.port else ""
    click.echo(f"{result.source.label} -> {result.destination.label}{port} ({result.protocol.upper()})")
    paths = max((step.path for step in result.steps), default=0)
    width = max((len(step.node) for step in result.steps), default=0) + 2
    current = 0
    for number, step in enumerate(result.steps, 1):
        if step.path != current:
            current = step.path
            click.echo(f"  path {current} of {paths}:")
        where = f"[{step.node}]" if step.node else ""
        action = click.style(f"{step.action:<10}", fg=_COLOURS.get(step.action), bold=step.final)
        click.echo(f"{number:>3}. {where:<{width}} {action} {step.text}")
        if step.decided_by:
            click.echo(f"{'':<{width + 16}}{click.style(step.decided_by, dim=True)}")
