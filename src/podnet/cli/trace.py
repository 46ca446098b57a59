"""`podnet trace`: a packet's path through the cluster, step by step, computed
from the store as each node's agent renders its tables and routes."""

from __future__ import annotations

import json
import sys

import click

from podnet.agent.controller import Snapshot
from podnet.api import cluster
from podnet.cli.get import cluster_store
from podnet.trace.ends import source_end, target
from podnet.trace.path import PathTracer, Trace

_COLOURS = {"deliver": "green", "leave": "green", "drop": "red", "reject": "red"}


@click.command("trace")
@click.argument("source", metavar="FROM")
@click.argument("destination", metavar="TO[:PORT]")
@click.option("--proto", "protocol", type=click.Choice(["tcp", "udp", "icmp"]), default="tcp", show_default=True)
@click.option("-n", "--namespace", default="default", show_default=True, help="The namespace of names without one.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--lab", "lab_name", help="The lab to read, when several are up.")
def trace_command(source: str, destination: str, protocol: str, namespace: str, output: str,
                  lab_name: str | None) -> None:
    """Where a new connection from FROM to TO goes, one numbered step per decision:
    the route and bridge it leaves by, host-gw or VXLAN, a Service's DNAT (every
    endpoint it may pick, each a path of its own), masquerade, NetworkPolicy,
    and the delivery or the drop, each naming the object that decided. FROM and
    TO are pods (`name`, `ns/name`), `node/NAME`, an IP address or `internet`;
    TO may be a Service (`svc/NAME`, `ns/svc/NAME`). Nothing is sent. Exit
    status 0 when every path delivers."""
    with cluster_store(lab_name) as store:
        snapshot = Snapshot.read(store)
        config = cluster.load(store)
    tracer = PathTracer(snapshot, config)
    start = source_end(tracer, source, namespace)
    end = target(tracer, snapshot.services, destination, namespace, protocol)
    result = tracer.trace(start, end.end.address, end.port, protocol)
    if output == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        print_trace(result, end.end.label)
    sys.exit(0 if result.delivered else 1)


def print_trace(result: Trace, target_label: str) -> None:
    port = f":{result.port}" if result.port else ""
    click.echo(f"{result.source.label} -> {target_label}{port} ({result.protocol.upper()})")
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
