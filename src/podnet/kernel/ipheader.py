"""The network header of a packet the kernel hands over (a logged packet over
NFLOG, a traced one over nftrace): its addresses and protocol, in either
family, so each reader turns the same bytes into the same words."""

from __future__ import annotations

import socket
from typing import NamedTuple


class NetworkHeader(NamedTuple):
    source: str
    destination: str
    protocol: int  # the IP protocol number (IPv6's next header)
    length: int  # where the transport header starts


def network_header(packet: bytes) -> NetworkHeader | None:
    """An IPv4 or IPv6 header; None for anything else. An IPv6 packet with
    extension headers gives the first one's number: nothing podnet logs or
    traces carries them."""
    version = packet[0] >> 4 if packet else 0
    if version == 4 and len(packet) >= 20:
        return NetworkHeader(socket.inet_ntop(socket.AF_INET, packet[12:16]),
                             socket.inet_ntop(socket.AF_INET, packet[16:20]), packet[9], (packet[0] & 0x0F) * 4)
    if version == 6 and len(packet) >= 40:
        return NetworkHeader(socket.inet_ntop(socket.AF_INET6, packet[8:24]),
                             socket.inet_ntop(socket.AF_INET6, packet[24:40]), packet[6], 40)
    return None
