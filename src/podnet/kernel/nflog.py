"""Packets a namespace's rules log to an NFLOG group, read over nfnetlink_log.

`podnet policy drops` binds the group while it runs. With nobody bound the
kernel finds no listener for a logged packet and goes on at once, so a rule's
`log group` costs next to nothing until someone looks.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time
from dataclasses import dataclass

from podnet.errors import KernelError
from podnet.kernel import netns
from podnet.kernel.nlmsg import NETLINK_NETFILTER, NFNL_HEADER, NLMSG_ERROR, attr, attributes, error_code, messages

_PACKET, _CONFIG = 4 << 8 | 0, 4 << 8 | 1  # NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_*
_REQUEST, _ACK = 0x1, 0x4
_CFG_CMD, _CFG_MODE = 1, 2  # NFULA_CFG_*
_CMD_BIND, _CMD_UNBIND = 1, 2
_COPY_PACKET = 2
_COPY_RANGE = 64  # bytes of each packet: the IP header and the ports are enough
_PAYLOAD, _PREFIX = 9, 10  # NFULA_*
PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP", 132: "SCTP"}


@dataclass(frozen=True)
class Logged:
    """One logged packet: the rule's prefix and the packet's addresses and ports."""

    at: float  # time.time() when it was read
    prefix: str
    source: str
    destination: str
    protocol: str
    port: int | None  # the destination port, for TCP, UDP and SCTP


def parse_packet(prefix: str, payload: bytes, at: float) -> Logged | None:
    """An IPv4 packet's header; None for anything else."""
    if len(payload) < 20 or payload[0] >> 4 != 4:
        return None
    header = (payload[0] & 0x0F) * 4
    number = payload[9]
    port = struct.unpack_from(">H", payload, header + 2)[0] if number in (6, 17, 132) and len(payload) >= header + 4 \
        else None
    return Logged(at, prefix, socket.inet_ntoa(payload[12:16]), socket.inet_ntoa(payload[16:20]),
                  PROTOCOLS.get(number, str(number)), port)


class NflogReader:
    """A socket bound to one NFLOG group of the namespace it was made in."""

    def __init__(self, group: int) -> None:
        self.group = group
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, 0))
        self._sequence = 0
        self._configure(attr(_CFG_CMD, bytes([_CMD_BIND])))
        self._configure(attr(_CFG_MODE, struct.pack(">IBB", _COPY_RANGE, _COPY_PACKET, 0)))

    def _configure(self, body: bytes) -> None:
        self._sequence += 1
        self.sock.send(NFNL_HEADER.pack(NFNL_HEADER.size + len(body), _CONFIG, _REQUEST | _ACK, self._sequence, 0,
                                        socket.AF_UNSPEC, 0, socket.htons(self.group)) + body)
        while True:
            for kind, _, sequence, message in messages(self.sock.recv(65536)):
                if kind == NLMSG_ERROR and sequence == self._sequence:
                    code = error_code(message)
                    if code:
                        raise KernelError(f"nflog group {self.group}: {errno.errorcode.get(code, code)}: "
                                          f"{os.strerror(code)}")
                    return

    def read(self, timeout: float) -> list[Logged]:
        """What was logged, waiting up to `timeout` seconds for the first."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return []
        try:
            data = self.sock.recv(1 << 20)
        except OSError as err:
            if err.errno == errno.ENOBUFS:  # logged faster than read: those are lost, the next are not
                return []
            raise
        found = []
        now = time.time()
        for kind, _, _, message in messages(data):
            if kind != _PACKET:
                continue
            fields = dict(attributes(message[NFNL_HEADER.size:]))
            prefix = fields.get(_PREFIX, b"").split(b"\0", 1)[0].decode(errors="replace")
            logged = parse_packet(prefix, fields.get(_PAYLOAD, b""), now)
            if logged is not None:
                found.append(logged)
        return found

    def close(self) -> None:
        self.sock.close()


def open_reader(namespace: str, group: int) -> NflogReader:
    """A reader of the group in a podnet namespace (the socket stays in it)."""
    return netns.run_in(namespace, NflogReader, group)
