"""A packet socket on one interface of a container's namespace: how a DHCP
client talks before its interface has an address (as dhclient's LPF and the
reference plugin's dhcp4client do)."""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass

from podnet.errors import KernelError
from podnet.kernel import netns
from podnet.kernel.netlink import open_path

ETH_P_IP = 0x0800


@dataclass(frozen=True)
class LinkAddress:
    index: int
    mac: str


def prepare_link(ns_path: str, ifname: str) -> LinkAddress:
    """The interface's index and MAC, brought up if it is down (a DHCP client
    cannot be heard on a link that is down)."""
    with open_path(ns_path, f"DHCP on {ifname}") as ns:
        info = ns.link_info(ifname)
        if info is None:
            raise KernelError(f"{ns_path}: no link named {ifname}")
        if not info["up"]:
            ns.set_up(ifname)
        return LinkAddress(int(info["index"]), str(info["mac"]))  # type: ignore[call-overload]


def set_down(ns_path: str, ifname: str) -> None:
    """What a DHCP client does when its lease runs out and no server renews it."""
    with open_path(ns_path, f"DHCP on {ifname}") as ns:
        if ns.index(ifname) is not None:
            ns.set_down(ifname)


class PacketPort:
    """Whole IPv4 frames out of and into one interface."""

    def __init__(self, ns_path: str, ifname: str) -> None:
        self.ifname = ifname
        netns.guard_root(ns_path, f"a packet socket on {ifname}")

        def opened() -> socket.socket:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
            sock.bind((ifname, ETH_P_IP))
            return sock

        try:
            self._sock = netns.run_in_path(ns_path, opened)
        except OSError as err:
            raise KernelError(f"{ns_path}: a packet socket on {ifname}: {err.strerror}") from None

    def send(self, frame: bytes) -> None:
        self._sock.send(frame)

    def receive(self, deadline: float) -> bytes | None:
        """The next frame, or None once the deadline (time.monotonic) passes."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._sock], [], [], left)
            if ready:
                frame, address = self._sock.recvfrom(65535)
                if address[2] != socket.PACKET_OUTGOING:  # our own frames come back too
                    return frame

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> PacketPort:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
