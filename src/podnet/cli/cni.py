"""`podnet cni install|serve`: the plugin binaries and the server they talk to."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from podnet.cni.plugins.dhcp import DEFAULT_SOCKET as DHCP_SOCKET

DHCP_STATE = Path("/run/podnet/dhcp-leases")  # /run: after a reboot no container holds a lease

from podnet.cli.agent import run_as_daemon


@click.group()
def cni() -> None:
    """CNI plugins: install the binaries, serve them from this namespace."""


@cni.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--relay", type=click.Choice(["auto", "c", "python"]), default="auto", show_default=True,
              help="The exec'd binary: the C relay (auto: when built), or the Python entry.")
def install(directory: str, relay: str) -> None:
    """Write podnet-bridge, podnet-host-local, podnet-dhcp, podnet-loopback and podnet-portmap into DIRECTORY."""
    from podnet.cni.install import install as write_plugins

    for path in write_plugins(directory, relay):
        click.echo(path)


@cni.command()
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False), help="Default: by this network namespace.")
def serve(socket_path: str | None) -> None:
    """Serve plugin invocations for this network namespace (the agent does this too)."""
    from podnet.cni.server import CniServer

    stop = run_as_daemon()
    server = CniServer(Path(socket_path) if socket_path else None).start()
    logging.getLogger("podnet.cni").info("serving CNI on %s", server.path)
    stop.wait()
    server.stop()


@cni.command("dhcp-daemon")
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False), default=DHCP_SOCKET,
              show_default=True, help="Where podnet-dhcp asks (its ipam.daemonSocketPath).")
@click.option("--timeout", default=10.0, show_default=True,
              help="Seconds to wait for a DHCP server's answer, with retransmissions, before failing an ADD.")
@click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path), default=DHCP_STATE,
              show_default=True, help="Where the leases held are recorded, for a restarted daemon to keep on.")
def dhcp_daemon(socket_path: str, timeout: float, state_dir: Path) -> None:
    """Acquire, renew and release containers' DHCP leases for podnet-dhcp, as the
    reference plugin's `dhcp daemon` does for it."""
    from podnet.ipam.dhcp.daemon import serve as serve_dhcp

    stop = run_as_daemon()
    serve_dhcp(socket_path, stop, timeout, state_dir)
