"""The kernel's own account of a marked packet (`meta nftrace set 1`), read over
nfnetlink as `nft monitor trace` reads it: each chain the packet passes reports
the rule that matched and its verdict, with the packet's addresses at that point.

Also here: the one real packet `podnet trace --live` sends from a namespace, and
the rule handles of a table as nft lists them (a trace names rules by handle).
"""

from __future__ import annotations

import errno
import re
import select
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from podnet.kernel import netns
from podnet.kernel.ipheader import network_header
from podnet.kernel.nftables.wire import NFNL_SUBSYS_NFTABLES
from podnet.kernel.nlmsg import NETLINK_NETFILTER, NFNL_HEADER, attributes, messages

NFNLGRP_NFTRACE = 9
_SOL_NETLINK, _NETLINK_ADD_MEMBERSHIP = 270, 1
_MSG_TRACE = NFNL_SUBSYS_NFTABLES << 8 | 17  # NFT_MSG_TRACE
_TABLE, _CHAIN, _HANDLE, _TYPE, _VERDICT, _ID, _NETWORK_HEADER, _TRANSPORT_HEADER, _POLICY = 1, 2, 3, 4, 5, 6, 8, 9, 16
_TYPES = {1: "policy", 2: "return", 3: "rule"}
_VERDICTS = {0: "drop", 1: "accept", 2: "stolen", 3: "queue", 4: "repeat", -1: "continue", -2: "break",
             -3: "jump", -4: "goto", -5: "return"}
PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}
FAMILIES = {1: "inet", 2: "ip", 10: "ip6"}  # NFPROTO_*: the family of the table that reported


@dataclass(frozen=True)
class TraceEvent:
    """One chain's report on the packet."""

    id: int  # the kernel's trace id (it may change between the hooks of one packet)
    table: str
    chain: str
    kind: str  # rule (one matched; with no handle, the chain's end), return, policy (a base chain's end)
    handle: int | None  # the rule's, for kind rule
    verdict: str  # accept, drop, continue, return, `jump CHAIN`, `goto CHAIN`
    source: str | None  # the packet's addresses and ports as the chain saw them
    destination: str | None
    protocol: str | None
    source_port: int | None
    destination_port: int | None
    family: str = "ip"  # the reporting table's: ip, ip6 or inet (tables of two families may share a name)

    @property
    def where(self) -> tuple[str, str]:
        """(family, table): which table reported, as rule handles are numbered per table."""
        return self.family, self.table


def parse_event(body: bytes, family: int = 2) -> TraceEvent | None:
    """One report; `family` is the message's (its nfgenmsg's), the reporting table's."""
    fields = dict(attributes(body))
    if _TABLE not in fields or _CHAIN not in fields:
        return None
    verdict = ""
    if _VERDICT in fields:
        inner = dict(attributes(fields[_VERDICT]))
        code = struct.unpack(">i", inner.get(1, b"\0\0\0\0"))[0]
        verdict = _VERDICTS.get(code, str(code))
        if 2 in inner:
            verdict += " " + inner[2].split(b"\0", 1)[0].decode()
    elif _POLICY in fields:
        verdict = _VERDICTS.get(struct.unpack(">I", fields[_POLICY])[0], "?")
    source = destination = protocol = None
    sport = dport = None
    header = network_header(fields.get(_NETWORK_HEADER, b""))
    if header is not None:
        source, destination = header.source, header.destination
        protocol = PROTOCOLS.get(header.protocol, str(header.protocol))
        transport = fields.get(_TRANSPORT_HEADER, b"")
        if protocol in ("tcp", "udp", "sctp") and len(transport) >= 4:
            sport, dport = struct.unpack_from(">HH", transport)
    handle = struct.unpack(">Q", fields[_HANDLE])[0] if _HANDLE in fields else None
    kind = _TYPES.get(struct.unpack(">I", fields.get(_TYPE, b"\0\0\0\0"))[0], "?")
    return TraceEvent(struct.unpack(">I", fields.get(_ID, b"\0\0\0\0"))[0], _text(fields[_TABLE]),
                      _text(fields[_CHAIN]), kind, handle, verdict, source, destination, protocol, sport, dport,
                      FAMILIES.get(family, str(family)))


def _text(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode(errors="replace")


class TraceReader:
    """Subscribed to the trace events of the namespace it was made in."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, 0))
        self.sock.setsockopt(_SOL_NETLINK, _NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTRACE)

    def read(self, timeout: float) -> list[TraceEvent]:
        """What was reported, waiting up to `timeout` seconds for the first."""
        found: list[TraceEvent] = []
        while select.select([self.sock], [], [], timeout)[0]:
            try:
                data = self.sock.recv(1 << 20)
            except OSError as err:
                if err.errno == errno.ENOBUFS:  # more than the buffer: the rest is still readable
                    continue
                raise
            for kind, _, _, message in messages(data):
                if kind == _MSG_TRACE:
                    event = parse_event(message[NFNL_HEADER.size:], NFNL_HEADER.unpack_from(message)[5])
                    if event is not None:
                        found.append(event)
            timeout = 0
        return found

    def close(self) -> None:
        self.sock.close()


def open_trace_reader(namespace: str) -> TraceReader:
    return netns.run_in(namespace, TraceReader)


_CHAIN_LINE = re.compile(r"^\s*chain (\S+) \{")
_HANDLE_LINE = re.compile(r"^\s*(.*?) # handle (\d+)$")


def rule_texts(namespace: str, tables: Iterable[tuple[str, str]]) -> dict[tuple[str, str, int], str]:
    """(family, table, handle) -> the rule as nft lists it, for the (family, table)s named."""
    texts: dict[tuple[str, str, int], str] = {}
    for family, table in tables:
        listed = netns.run(namespace, ["nft", "-a", "list", "table", family, table], check=False)
        in_chain = False
        for line in listed.stdout.splitlines():
            if _CHAIN_LINE.match(line):
                in_chain = True
                continue
            found = _HANDLE_LINE.match(line)
            if in_chain and found and not line.strip().startswith(("chain ", "table ")):
                texts[(family, table, int(found.group(2)))] = found.group(1).strip()
    return texts


def send_one(namespace: str, destination: str, port: int | None, protocol: str, source_port: int) -> str:
    """One real packet from the namespace: a TCP SYN (a connect, given a second),
    a UDP datagram or an ICMP echo request, IPv4 or IPv6 as the destination is.
    Returns what came of it, in words."""
    family = socket.AF_INET6 if ":" in destination else socket.AF_INET

    def send() -> str:
        if protocol == "icmp":
            number, echo = (socket.IPPROTO_ICMPV6, _ECHO_V6) if family == socket.AF_INET6 else \
                (socket.IPPROTO_ICMP, _ECHO_V4)
            with socket.socket(family, socket.SOCK_RAW, number) as sock:
                sock.settimeout(1.0)
                sock.sendto(_echo_request(source_port, echo), (destination, 0))
                try:
                    sock.recv(1024)
                    return "answered"
                except OSError:
                    return "no answer"
        kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
        with socket.socket(family, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", source_port))
            sock.settimeout(1.0)
            try:
                if protocol == "tcp":
                    sock.connect((destination, port or 0))
                    return "connected"
                sock.sendto(b"podnet trace\n", (destination, port or 0))
                return "sent"
            except ConnectionRefusedError:
                return "refused"
            except OSError as err:
                return "no answer" if isinstance(err, TimeoutError) else err.strerror or str(err)

    return netns.run_in(namespace, send)


_ECHO_V4, _ECHO_V6 = 8, 128  # ICMP's and ICMPv6's echo request


def _echo_request(identifier: int, kind: int = _ECHO_V4) -> bytes:
    """An echo request; the checksum is ICMP's (for ICMPv6 the kernel writes its own
    over the pseudo-header, as RFC 3542 has raw ICMPv6 sockets do)."""
    header = struct.pack(">BBHHH", kind, 0, 0, identifier & 0xFFFF, 1) + b"podnet trace"
    total = sum(struct.unpack(f">{len(header) // 2}H", header))
    total = (total >> 16) + (total & 0xFFFF)
    checksum = ~(total + (total >> 16)) & 0xFFFF
    return header[:2] + struct.pack(">H", checksum) + header[4:]
