"""A lab whose pods get their addresses by DHCP (`networking: {ipam: dhcp}`): each
node's bridge has a DHCP server on it (dnsmasq, in the node's namespace, as a
router's), and one DHCP daemon holds the pods' leases for podnet-dhcp."""

from __future__ import annotations

import ipaddress
import shutil
import time
from pathlib import Path
from typing import Any

from podnet.errors import LabError
from podnet.lab import processes
from podnet.lab.plan import NodePlan
from podnet.lab.state import LabRecord
from podnet.network.node import POD_BRIDGE, gateway_for

LEASE_TIME = "1h"
DAEMON_START_TIMEOUT = 10.0
FIRST_HOST = 10  # .2-.9 stay out of the range, for addresses set by hand


def daemon_socket(record: LabRecord) -> str:
    return str(record.directory / "dhcp.sock")


def ipam_config(record: LabRecord) -> dict[str, Any]:
    return {"type": "podnet-dhcp", "daemonSocketPath": daemon_socket(record)}


def dnsmasq_argv(node: NodePlan, record: LabRecord) -> list[str]:
    """DHCP only (port 0: no DNS), on the node's pod bridge, over its pod subnet
    less the gateway and the first few; --no-ping skips dnsmasq's 3 s check that a
    new address is unused, which the subnet being the node's own makes moot."""
    subnet = ipaddress.ip_network(node.pod_cidr)
    hosts = list(subnet.hosts())
    return ["dnsmasq", "--keep-in-foreground", "--port=0", f"--interface={POD_BRIDGE}", "--bind-interfaces",
            "--no-ping", "--dhcp-authoritative", "--log-facility=-", "--log-dhcp",
            f"--dhcp-range={hosts[FIRST_HOST - 1]},{hosts[-1]},{subnet.netmask},{LEASE_TIME}",
            f"--dhcp-option=option:router,{gateway_for(node.pod_cidr).ip}",
            f"--dhcp-leasefile={record.directory / 'dhcp' / f'{node.name}.leases'}"]


def check_installed() -> None:
    if shutil.which("dnsmasq") is None:
        raise LabError("networking.ipam dhcp runs dnsmasq on each node's bridge: apt-get install dnsmasq-base")


def start_server(node: NodePlan, record: LabRecord) -> None:
    (record.directory / "dhcp").mkdir(parents=True, exist_ok=True)
    processes.start(node.namespace, dnsmasq_argv(node, record), record.log_path(f"dhcp-{node.name}"), supervised=True)


def start_daemon(fabric_namespace: str, record: LabRecord) -> None:
    """The daemon enters pods' namespaces by path, so where it runs matters not:
    the fabric's namespace, out of every node's way. Waited for, so the first
    pod's ADD finds it."""
    processes.start(fabric_namespace, ["podnet", "cni", "dhcp-daemon", "--socket", daemon_socket(record),
                                       "--state", str(record.directory / "dhcp" / "held")],
                    record.log_path("dhcp-daemon"), own_etc=False, supervised=True)
    socket = Path(daemon_socket(record))
    deadline = time.monotonic() + DAEMON_START_TIMEOUT
    while not socket.exists():
        if time.monotonic() > deadline:
            raise LabError("the DHCP daemon did not start; see dhcp-daemon.log in the lab's directory")
        time.sleep(0.02)
