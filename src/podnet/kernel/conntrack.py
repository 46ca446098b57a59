"""Connection tracking entries in a namespace, over ctnetlink: no `conntrack`
process is started (the proxy forgets UDP flows on an endpoint change, and a
process per change cost more than the change itself).

The entries are dumped and matched here, then deleted one by one by their
original tuple, as `conntrack -D` does. An entry gone meanwhile is fine.
The flow recorder also follows the entries as they are made and destroyed
(`conntrack -E`): an entry's two tuples say which service address was asked,
which endpoint answered and whether the source was masqueraded.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from podnet.errors import KernelError
from podnet.kernel import netns
from podnet.kernel.nlmsg import (
    NETLINK_NETFILTER, NFNL_HEADER, NLMSG_DONE, NLMSG_ERROR, attributes, error_code, messages, nest,
)

_GET, _DELETE, _GET_STATS = 0x100 | 1, 0x100 | 2, 0x100 | 5  # subsystem 1 (ctnetlink) << 8 | IPCTNL_MSG_CT_*
_REQUEST, _ACK, _DUMP = 0x1, 0x4, 0x300
# attributes: CTA_TUPLE_ORIG/REPLY { CTA_TUPLE_IP { V4_SRC, V4_DST | V6_SRC, V6_DST }, CTA_TUPLE_PROTO { NUM, ... } }
_ORIG, _REPLY, _IP, _PROTO, _SRC, _DST, _NUM = 1, 2, 1, 2, 1, 2, 1
_V6 = 2  # CTA_IP_V6_SRC, _DST are V4's plus 2
UDP = 17


def _address_of(ip: dict[int, bytes], which: int) -> str | None:
    """An address of a tuple's CTA_TUPLE_IP, in whichever family the entry is."""
    if len(ip.get(which, b"")) == 4:
        return socket.inet_ntop(socket.AF_INET, ip[which])
    if len(ip.get(which + _V6, b"")) == 16:
        return socket.inet_ntop(socket.AF_INET6, ip[which + _V6])
    return None


class _Entry:
    """An entry's original tuple (as the kernel sent it, to delete by) and what a match needs."""

    def __init__(self, family: int, body: bytes) -> None:
        self.family = family  # a deletion names the entry's family, as its tuple is of that family
        tuples = dict(attributes(body))
        self.original = tuples.get(_ORIG, b"")
        self.protocol = self._proto(self.original)
        self.original_destination = self._address(self.original, _DST)
        self.reply_source = self._address(tuples.get(_REPLY, b""), _SRC)

    @staticmethod
    def _address(tuple_: bytes, which: int) -> str | None:
        return _address_of(dict(attributes(dict(attributes(tuple_)).get(_IP, b""))), which)

    @staticmethod
    def _proto(tuple_: bytes) -> int | None:
        number = dict(attributes(dict(attributes(tuple_)).get(_PROTO, b""))).get(_NUM)
        return number[0] if number else None


class _Ctnetlink:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sequence = 0

    def send(self, kind: int, flags: int, body: bytes = b"",
             family: int = socket.AF_UNSPEC) -> Iterator[tuple[int, bytes]]:
        """The answer's messages: each one's family and body (after nfgenmsg); raises
        on an error but ENOENT. AF_UNSPEC asks of both families."""
        self.sequence += 1
        self.sock.send(NFNL_HEADER.pack(NFNL_HEADER.size + len(body), kind, flags, self.sequence, 0, family,
                                        0, 0) + body)
        while True:
            for kind, _, sequence, message in messages(self.sock.recv(1 << 20)):
                if sequence != self.sequence:
                    continue
                if kind in (NLMSG_ERROR, NLMSG_DONE):
                    code = error_code(message)
                    if code and code != errno.ENOENT:
                        raise KernelError(f"conntrack: {errno.errorcode.get(code, code)}: {os.strerror(code)}")
                    return
                yield NFNL_HEADER.unpack_from(message)[5], message[NFNL_HEADER.size:]


def _canonical(address: str | None) -> str | None:
    """As the kernel's addresses read back (an IPv6 address may be written several
    ways); what is no address stays as given, and matches nothing."""
    if not address:
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def forget_udp(namespace: str, *, reply_source: str | None = None, original_destination: str | None = None) -> int:
    """Drop UDP flows, so the next datagram of a client with a fixed source port is
    load-balanced afresh (UDP has no connection end to let the entry expire).
    Returns how many were dropped. Either family: the addresses say which."""
    wanted_source = _canonical(reply_source)
    wanted_destination = _canonical(original_destination)

    def forget() -> int:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
            sock.bind((0, 0))
            ctnetlink = _Ctnetlink(sock)
            doomed = []
            for family, body in ctnetlink.send(_GET, _REQUEST | _DUMP):
                entry = _Entry(family, body)
                if entry.protocol != UDP:
                    continue
                if wanted_source and entry.reply_source != wanted_source:
                    continue
                if wanted_destination and entry.original_destination != wanted_destination:
                    continue
                doomed.append(entry)
            for entry in doomed:  # the tuple goes back as the kernel gave it
                for _ in ctnetlink.send(_DELETE, _REQUEST | _ACK, nest(_ORIG, entry.original), entry.family):
                    pass
            return len(doomed)

    return netns.run_in(namespace, forget)


def table_fill() -> tuple[int, int]:
    """(entries, the table's maximum) in the calling thread's namespace. Asking also
    loads ctnetlink, which NFLOG needs to attach conntrack entries to packets."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
        sock.bind((0, 0))
        for _, body in _Ctnetlink(sock).send(_GET_STATS, _REQUEST):
            fields = dict(attributes(body))
            entries, maximum = fields.get(1, b""), fields.get(2, b"")  # CTA_STATS_GLOBAL_ENTRIES, _MAX_ENTRIES
            return (int.from_bytes(entries, "big") if len(entries) == 4 else 0,
                    int.from_bytes(maximum, "big") if len(maximum) == 4 else 0)
    return 0, 0


_NEW_GROUP, _DESTROY_GROUP = 1, 3  # NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_DESTROY
_SOL_NETLINK, _NETLINK_ADD_MEMBERSHIP = 270, 1
_MSG_NEW, _MSG_DELETE = 0x100 | 0, 0x100 | 2
_ID, _COUNTERS_ORIG, _COUNTERS_REPLY = 12, 9, 10  # CTA_*; counters { PACKETS 1, BYTES 2 }, 64-bit


@dataclass(frozen=True)
class Tuple:
    """One direction of an entry."""

    protocol: int
    source: str
    destination: str
    source_port: int | None
    destination_port: int | None

    def key(self) -> tuple[object, ...]:
        return (self.protocol, self.source, self.source_port, self.destination, self.destination_port)

    def inverted_key(self) -> tuple[object, ...]:
        """The key of packets that travel this tuple's way back: a reply tuple
        inverted is the connection's packets as they leave, NAT done."""
        return (self.protocol, self.destination, self.destination_port, self.source, self.source_port)


@dataclass(frozen=True)
class Event:
    """An entry made (`new`) or destroyed (`destroy`, with its counters when
    net.netfilter.nf_conntrack_acct is on)."""

    kind: str
    id: int
    original: Tuple
    reply: Tuple
    packets: int | None = None  # both ways, for a destroyed entry
    bytes: int | None = None


def _tuple(body: bytes) -> Tuple:
    parts = dict(attributes(body))
    ip = dict(attributes(parts.get(_IP, b"")))
    proto = dict(attributes(parts.get(_PROTO, b"")))

    def port(kind: int) -> int | None:
        value = proto.get(kind, b"")
        return struct.unpack(">H", value)[0] if len(value) == 2 else None

    number = proto.get(_NUM, b"\0")
    return Tuple(number[0], _address_of(ip, _SRC) or "", _address_of(ip, _DST) or "", port(2), port(3))


def parse_event(kind: int, body: bytes) -> Event | None:
    fields = dict(attributes(body))
    if _ORIG not in fields or _REPLY not in fields:
        return None
    identifier = struct.unpack(">I", fields[_ID])[0] if len(fields.get(_ID, b"")) == 4 else 0
    packets = octets = None
    if _COUNTERS_ORIG in fields:
        counted = [dict(attributes(fields.get(which, b""))) for which in (_COUNTERS_ORIG, _COUNTERS_REPLY)]
        packets = sum(struct.unpack(">Q", c[1])[0] for c in counted if len(c.get(1, b"")) == 8)
        octets = sum(struct.unpack(">Q", c[2])[0] for c in counted if len(c.get(2, b"")) == 8)
    return Event("new" if kind == _MSG_NEW else "destroy", identifier, _tuple(fields[_ORIG]), _tuple(fields[_REPLY]),
                 packets, octets)


class EventReader:
    """Entries made and destroyed in the namespace it was made in."""

    def __init__(self, buffer: int = 16 << 20) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, buffer)  # SO_RCVBUFFORCE
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        self.sock.bind((0, 0))
        for group in (_NEW_GROUP, _DESTROY_GROUP):
            self.sock.setsockopt(_SOL_NETLINK, _NETLINK_ADD_MEMBERSHIP, group)
        self.overruns = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self, timeout: float) -> list[Event]:
        data = self.receive(timeout)
        return self.parse(data) if data else []

    def receive(self, timeout: float) -> bytes | None:
        """One datagram of events as the kernel sent it, or None."""
        if not select.select([self.sock], [], [], timeout)[0]:
            return None
        try:
            return self.sock.recv(1 << 20)
        except OSError as err:
            if err.errno == errno.ENOBUFS:
                self.overruns += 1
                return None
            raise

    @staticmethod
    def parse(data: bytes) -> list[Event]:
        found = []
        for kind, _, _, message in messages(data):
            if kind in (_MSG_NEW, _MSG_DELETE):
                event = parse_event(kind, message[NFNL_HEADER.size:])
                if event is not None:
                    found.append(event)
        return found

    def close(self) -> None:
        self.sock.close()


def open_events(namespace: str) -> EventReader:
    return netns.run_in(namespace, EventReader)
