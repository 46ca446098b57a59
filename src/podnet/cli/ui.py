"""`podnet ui`: the web view of a cluster lab."""

from __future__ import annotations

import click

from podnet.lab.client import cluster_record


@click.command("ui")
@click.option("--lab", "lab_name", help="The lab to show, when several are up.")
@click.option("--port", default=8050, show_default=True, help="The port to serve on.")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="The address to serve on (loopback: the page shows everything about the cluster).")
def ui(lab_name: str | None, port: int, address: str) -> None:
    """Serve the web view of a cluster lab: a live map of its nodes, pods and
    services with the flows between them, a flows table with observe's filters,
    a trace drawn over the map, and the details of a pod or a node."""
    from podnet.ui.server import serve

    record = cluster_record(lab_name)
    click.echo(f"podnet ui: http://{address}:{port}/  (lab {record.name}; Ctrl-C stops it)")
    try:
        serve(record, address, port)
    except OSError as err:
        raise click.ClickException(f"cannot serve on {address}:{port}: {err.strerror or err}") from None
