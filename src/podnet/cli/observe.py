"""`podnet observe`: the flows every node agent recorded, merged, filtered and
printed as a table, JSON lines or one-liners (as `hubble observe` prints them)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable

import click

from podnet.cli.columns import echo_row, print_table
from podnet.kernel.nftables.rules import target
from podnet.lab.client import flow_merger
from podnet.observe.filter import flow_filter
from podnet.observe.flows import VERDICTS, Flow

COLUMNS = ("TIME", "NODE", "SOURCE", "DESTINATION", "PROTO", "VERDICT", "SUMMARY")
WIDTHS = [12, 14, 28, 40, 6, 11, 40]
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)$")


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    found = _DURATION.match(text)
    if not found:
        raise click.BadParameter(f"{text!r} is not a duration such as 30s, 5m or 1h", param_hint="--since")
    return time.time() - float(found.group(1)) * {"s": 1, "m": 60, "h": 3600}[found.group(2)]


def _end(address: str, port: int | None, pod: str, node: str = "") -> str:
    where = pod or (f"node/{node}" if node else address)
    return target(where, port) if port else where  # an IPv6 address in brackets


def summary(flow: Flow) -> str:
    parts = []
    if flow.service:
        parts.append(f"svc {flow.service} -> {flow.endpoint_pod or flow.endpoint}")
    elif flow.endpoint:
        parts.append(f"-> {flow.endpoint_pod or flow.endpoint}")
    if flow.masqueraded_to:
        parts.append(f"masqueraded to {flow.masqueraded_to}")
    if flow.reason:
        parts.append(flow.reason + (f": {flow.policy}" if flow.policy else ""))
    if flow.tcp_flags:
        parts.append(flow.tcp_flags)
    return "; ".join(parts)


def row(flow: Flow) -> tuple[str, ...]:
    return (time.strftime("%H:%M:%S", time.localtime(flow.time)) + f".{int(flow.time * 1000) % 1000:03d}", flow.node,
            _end(flow.source, flow.source_port, flow.source_pod, flow.source_node),
            _end(flow.destination, flow.destination_port, flow.destination_pod or flow.service.split(":")[0],
                 flow.destination_node),
            flow.protocol, flow.verdict, summary(flow))


def compact(flow: Flow) -> str:
    """As hubble's compact output: time, source -> destination, verdict, and what happened."""
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(flow.time)) + f".{int(flow.time * 1000) % 1000:03d}"
    to = _end(flow.destination, flow.destination_port, flow.destination_pod or flow.service.split(":")[0],
              flow.destination_node)
    what = summary(flow)
    return (f"{stamp} [{flow.node}]: {_end(flow.source, flow.source_port, flow.source_pod, flow.source_node)} -> {to} "
            f"{flow.protocol} {flow.verdict}{f' ({what})' if what else ''}")


@click.command()
@click.option("--from-pod", help="Flows from this pod (`name` or `ns/name`).")
@click.option("--to-pod", help="Flows to this pod (directly or through a service).")
@click.option("--pod", help="Flows from or to this pod.")
@click.option("-n", "--namespace", help="Flows from or to this namespace (and pods named without one are in it).")
@click.option("--from-namespace")
@click.option("--to-namespace")
@click.option("--service", help="Flows through this service (`name` or `ns/name`).")
@click.option("--verdict", "verdicts", multiple=True, type=click.Choice(VERDICTS, case_sensitive=False),
              help="Repeat for several.")
@click.option("--protocol", type=click.Choice(["tcp", "udp", "icmp", "icmpv6", "sctp"], case_sensitive=False))
@click.option("--port", type=int, help="Source, destination or endpoint port.")
@click.option("--ip", help="Source, destination, endpoint or masquerade address, of either family, or a CIDR "
                           "holding it.")
@click.option("--since", "since_text", help="Only flows of the last 30s, 5m, 1h, ...")
@click.option("--last", type=int, help="Only the last N flows the filters keep.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new flows until interrupted.")
@click.option("-o", "--output", type=click.Choice(["table", "json", "compact"]), default="table", show_default=True)
@click.option("--lab", "lab_name", help="The lab to watch, when several are up.")
def observe(from_pod: str | None, to_pod: str | None, pod: str | None, namespace: str | None,
            from_namespace: str | None, to_namespace: str | None, service: str | None, verdicts: tuple[str, ...],
            protocol: str | None, port: int | None, ip: str | None, since_text: str | None, last: int | None,
            follow: bool, output: str, lab_name: str | None) -> None:
    """Flows every node recorded: new connections let through (with the service
    and endpoint they went to, and masquerade), and packets dropped or rejected,
    with the reason (a policy, no endpoints, an undefined port). Each node keeps
    its last 10 000; losses are counted and shown."""
    merger = flow_merger(lab_name)
    wanted = flow_filter(from_pod, to_pod, pod, namespace, from_namespace, to_namespace, service, verdicts, protocol,
                         port, ip, _since(since_text))
    shown = [f for f in merger.poll() if wanted(f)]
    shown = shown[-last:] if last else shown  # the last N of those the filters keep, as hubble's --last
    if not follow:
        _print(shown, output)
        if output != "json" and (losses := merger.losses()):
            click.echo(losses, err=True)
        return
    if output == "table":
        echo_row(COLUMNS, WIDTHS)
    _print(shown, output, rows_only=True)
    told = ""
    try:
        while True:
            time.sleep(0.5)
            _print([f for f in merger.poll() if wanted(f)], output, rows_only=True)
            if (losses := merger.losses()) != told:  # what is missing, once each time it changes
                told = losses
                if losses:
                    click.echo(losses, err=True)
    except KeyboardInterrupt:
        pass


def _print(flows: Iterable[Flow], output: str, rows_only: bool = False) -> None:
    if output == "json":
        for flow in flows:
            click.echo(json.dumps(flow.to_json()))
    elif output == "compact":
        for flow in flows:
            click.echo(compact(flow))
    elif rows_only:
        for flow in flows:
            echo_row(row(flow), WIDTHS)
    else:
        print_table(COLUMNS, [row(f) for f in flows])
