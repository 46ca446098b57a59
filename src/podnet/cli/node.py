"""`podnet node join|leave|status`: podnet on a real machine."""

from __future__ import annotations

import time
from pathlib import Path

import click

from podnet.cli.columns import print_table
from podnet.cli.etcdflags import etcd_tls_options, tls_files
from podnet.network import backends

ROOT = click.Path(file_okay=False, path_type=Path)


@click.group()
def node() -> None:
    """Join this machine to a cluster whose store is etcd, leave it, or see how it stands."""


@node.command()
@click.option("--store", "store", required=True, metavar="etcd://HOST:PORT[,HOST:PORT...]", help="The cluster's etcd.")
@click.option("--name", "name", required=True, help="This node's name in the cluster.")
@click.option("--backend", type=click.Choice(list(backends.BACKENDS)),
              help=f"How pod traffic crosses nodes ({backends.help_text()}); the cluster's if omitted (must "
                   f"match it), {backends.ACROSS_SUBNETS} when this node starts the cluster.")
@click.option("--address", help="This node's address on the underlay, or one per family comma-separated, as "
                                "kubelet's --node-ip [the one it reaches etcd from].")
@click.option("--control-plane", is_flag=True, help="Also run the control plane here (its unit is written too).")
@click.option("--ca-keyfile", type=click.Path(dir_okay=False),
              help="The key of the CA --etcd-cafile names (with --control-plane): also serve the Kubernetes API "
                   "here, with a certificate issued for this node and an admin kubeconfig.")
@click.option("--pod-subnet", default="10.244.0.0/16", show_default=True,
              help="The pod network, when this node starts the cluster; dual-stack: a CIDR per family, "
                   "comma-separated (10.244.0.0/16,fd00:10:244::/56), the primary first.")
@click.option("--service-subnet", default="10.96.0.0/12", show_default=True,
              help="The Service network, when this node starts the cluster; dual-stack as --pod-subnet "
                   "(10.96.0.0/12,fd00:10:96::/112).")
@click.option("--root", "root", type=ROOT, default=Path("/"), show_default=True,
              help="Write under this directory instead of / (every path the files name too).")
@etcd_tls_options
def join(store: str, name: str, backend: str | None, address: str | None, control_plane: bool,
         ca_keyfile: str | None, pod_subnet: str, service_subnet: str, root: Path, etcd_cafile: str | None,
         etcd_certfile: str | None, etcd_keyfile: str | None) -> None:
    """Lease a pod subnet, register the node, and write the CNI conflist, the
    plugins and the systemd units. Starts nothing: it prints the systemctl line."""
    from podnet.cni.install import FALLBACK_DIR
    from podnet.machine import files
    from podnet.machine.membership import Request, join as join_cluster

    request = Request(store, name, root.resolve(), backend, address, tls_files(etcd_cafile, etcd_certfile, etcd_keyfile),
                      control_plane, pod_subnet, service_subnet, ca_keyfile)
    if request.tls is None:
        click.echo("warning: etcd without TLS: anyone who reaches it can rewrite the cluster "
                   "(give --etcd-cafile, --etcd-certfile and --etcd-keyfile)", err=True)
    joining, written = join_cluster(request)
    click.echo(f"node {joining.name} joined at {', '.join(joining.addresses)}: pod subnet{'s' * (len(joining.pod_cidrs) > 1)} "
               f"{', '.join(joining.pod_cidrs)}, "
               f"backend {joining.cluster.backend}")
    for path in written:
        if FALLBACK_DIR not in path.parts:  # the plugins' fallback launchers: one line for the plugins is enough
            click.echo(f"  wrote {path}")
    units = " ".join(files.unit_names(joining.control_plane, joining.apiserver))
    click.echo(f"start it with:\n  systemctl daemon-reload && systemctl enable --now {units}")
    if joining.apiserver:
        click.echo(f"then kubectl reaches it with:\n  export KUBECONFIG={joining.path(files.KUBECONFIG)}")


@node.command()
@click.option("--root", "root", type=ROOT, default=Path("/"), show_default=True, help="The root join wrote under.")
def leave(root: Path) -> None:
    """Take the node and its subnet lease out of the store, and remove what join wrote."""
    from podnet.machine import files
    from podnet.machine.membership import leave as leave_cluster

    node_left = leave_cluster(root.resolve())
    units = " ".join(files.unit_names(node_left.control_plane, node_left.apiserver))
    click.echo(f"node {node_left.name} left: its lease of {', '.join(node_left.pod_cidrs)} is released, "
               f"{len(node_left.files) + 1} files removed")
    click.echo(f"if its units still run, stop them:\n  systemctl disable --now {units}")


@node.command()
@click.option("--root", "root", type=ROOT, default=Path("/"), show_default=True, help="The root join wrote under.")
def status(root: Path) -> None:
    """The node's lease, its agent, and the peers it routes to."""
    from podnet.machine.membership import joined
    from podnet.machine.status import status as node_status

    now = node_status(joined(root.resolve()))
    lease = (f"{now.pod_cidr}, expires in {(now.lease_expires - time.time()) / 3600:.1f} h"
             if now.lease_expires else f"{now.pod_cidr} (no longer held)")
    heartbeat = f"{now.heartbeat_age:.1f} s ago" if now.heartbeat_age is not None else "never"
    registered = ("Ready" if now.ready else "NotReady") if now.registered else "not in the store"
    click.echo(f"node:      {now.name} ({now.address}), {registered}")
    click.echo(f"lease:     {lease}")
    click.echo(f"agent:     {now.agent}; last heartbeat {heartbeat}")
    print_table(("NAME", "ADDRESS", "POD-CIDR", "STATUS", "ROUTE HERE"),
                [(peer.name, peer.address, peer.pod_cidr, "Ready" if peer.ready else "NotReady",
                  str(peer.route) if peer.route else "none") for peer in now.peers], title="peers")
