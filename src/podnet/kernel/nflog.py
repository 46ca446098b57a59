"""Packets a namespace's rules log to an NFLOG group, read over nfnetlink_log.

Every podnet rule that logs uses one group, OBSERVED_GROUP: a new connection's
first packet ("flow"), a policy's drop, a service's reject. The node agent binds
it and keeps what it reads as flow records. The group numbers each packet it
logs, so a reader that fell behind knows exactly how many it missed.
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
from podnet.kernel.ipheader import network_header
from podnet.kernel.nlmsg import NETLINK_NETFILTER, NFNL_HEADER, NLMSG_ERROR, attr, attributes, error_code, messages

_PACKET, _CONFIG = 4 << 8 | 0, 4 << 8 | 1  # NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_*
_REQUEST, _ACK = 0x1, 0x4
_CFG_CMD, _CFG_MODE, _CFG_TIMEOUT, _CFG_QTHRESH, _CFG_FLAGS = 1, 2, 4, 5, 6  # NFULA_CFG_*
_CMD_BIND, _CMD_UNBIND = 1, 2
_COPY_PACKET = 2
_COPY_RANGE = 64  # bytes of each packet: the IP header (IPv6's is 40) and the TCP flags are enough
_FLAG_SEQ = 0x1
_PAYLOAD, _PREFIX, _SEQ = 9, 10, 12  # NFULA_*
PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}
NUMBERS = {name: number for number, name in PROTOCOLS.items()}
OBSERVED_GROUP = 7170
_TCP_FLAGS = ((0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"))


@dataclass(frozen=True)
class Logged:
    """One logged packet: the rule's prefix and the packet's addresses and ports."""

    at: float  # time.time() when it was read
    prefix: str
    source: str
    destination: str
    protocol: str
    port: int | None  # the destination port, for TCP, UDP and SCTP
    source_port: int | None = None
    tcp_flags: str = ""  # "SYN", "SYN,ACK", ...
    sequence: int | None = None  # the group's number for it (with numbering on)


def parse_packet(prefix: str, payload: bytes, at: float, sequence: int | None = None) -> Logged | None:
    """An IPv4 or IPv6 packet's header; None for anything else."""
    found = network_header(payload)
    if found is None:
        return None
    source, destination, number, header = found
    ports = struct.unpack_from(">HH", payload, header) if number in (6, 17, 132) and len(payload) >= header + 4 \
        else (None, None)
    flags = ""
    if number == 6 and len(payload) >= header + 14:
        flags = ",".join(name for bit, name in _TCP_FLAGS if payload[header + 13] & bit)
    return Logged(at, prefix, source, destination, PROTOCOLS.get(number, str(number)), ports[1], ports[0], flags,
                  sequence)


class NflogReader:
    """A socket bound to one NFLOG group of the namespace it was made in.
    `numbered` asks the kernel to number the packets, and `batch` to send
    them in batches (up to `batch` packets, or what came within `batch_ms`):
    what a flow recorder needs."""

    def __init__(self, group: int, numbered: bool = False, batch: int = 1, batch_ms: int = 0,
                 buffer: int = 16 << 20) -> None:
        self.group = group
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, buffer)  # SO_RCVBUFFORCE: root may pass rmem_max
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        self.sock.bind((0, 0))
        self._sequence = 0
        self.overruns = 0  # times the socket's buffer overflowed (the numbering tells how much was lost)
        try:
            self._configure(attr(_CFG_CMD, bytes([_CMD_BIND])))
            self._configure(attr(_CFG_MODE, struct.pack(">IBB", _COPY_RANGE, _COPY_PACKET, 0)))
            if numbered:
                self._configure(attr(_CFG_FLAGS, struct.pack(">H", _FLAG_SEQ)))
            if batch > 1:
                self._configure(attr(_CFG_QTHRESH, struct.pack(">I", batch)))
                self._configure(attr(_CFG_TIMEOUT, struct.pack(">I", max(1, batch_ms // 10))))  # in 1/100 s
        except BaseException:
            self.sock.close()  # the group is free again at once
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

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
        data = self.receive(timeout)
        return self.parse(data, time.time()) if data else []

    def receive(self, timeout: float) -> bytes | None:
        """One datagram as the kernel sent it (a batch of logged packets), or None."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None
        try:
            return self.sock.recv(1 << 20)
        except OSError as err:
            if err.errno == errno.ENOBUFS:  # logged faster than read: those are lost, the next are not
                self.overruns += 1
                return None
            raise

    @staticmethod
    def parse(data: bytes, at: float) -> list[Logged]:
        found = []
        for kind, _, _, message in messages(data):
            if kind != _PACKET:
                continue
            fields = dict(attributes(message[NFNL_HEADER.size:]))
            prefix = fields.get(_PREFIX, b"").split(b"\0", 1)[0].decode(errors="replace")
            sequence = struct.unpack(">I", fields[_SEQ])[0] if len(fields.get(_SEQ, b"")) == 4 else None
            logged = parse_packet(prefix, fields.get(_PAYLOAD, b""), at, sequence)
            if logged is not None:
                found.append(logged)
        return found

    def close(self) -> None:
        self.sock.close()


def open_reader(namespace: str, group: int, numbered: bool = False, batch: int = 1,
                batch_ms: int = 0) -> NflogReader:
    """A reader of the group in a podnet namespace (the socket stays in it)."""
    return netns.run_in(namespace, NflogReader, group, numbered, batch, batch_ms)
