"""Connection tracking entries in a namespace, over ctnetlink: no `conntrack`
process is started (the proxy forgets UDP flows on an endpoint change, and a
process per change cost more than the change itself).

The entries are dumped and matched here, then deleted one by one by their
original tuple, as `conntrack -D` does. An entry gone meanwhile is fine.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator

from podnet.errors import KernelError
from podnet.kernel import netns
from podnet.kernel.nlmsg import (
    NETLINK_NETFILTER, NFNL_HEADER, NLMSG_DONE, NLMSG_ERROR, attributes, error_code, messages, nest,
)

_GET, _DELETE = 0x100 | 1, 0x100 | 2  # subsystem 1 (ctnetlink) << 8 | IPCTNL_MSG_CT_*
_REQUEST, _ACK, _DUMP = 0x1, 0x4, 0x300
# attributes: CTA_TUPLE_ORIG/REPLY { CTA_TUPLE_IP { V4_SRC, V4_DST }, CTA_TUPLE_PROTO { NUM, ... } }
_ORIG, _REPLY, _IP, _PROTO, _SRC, _DST, _NUM = 1, 2, 1, 2, 1, 2, 1
UDP = 17


class _Entry:
    """An entry's original tuple (as the kernel sent it, to delete by) and what a match needs."""

    def __init__(self, body: bytes) -> None:
        tuples = dict(attributes(body))
        self.original = tuples.get(_ORIG, b"")
        self.protocol = self._proto(self.original)
        self.original_destination = self._address(self.original, _DST)
        self.reply_source = self._address(tuples.get(_REPLY, b""), _SRC)

    @staticmethod
    def _address(tuple_: bytes, which: int) -> str | None:
        ip = dict(attributes(dict(attributes(tuple_)).get(_IP, b"")))
        return socket.inet_ntoa(ip[which]) if len(ip.get(which, b"")) == 4 else None

    @staticmethod
    def _proto(tuple_: bytes) -> int | None:
        number = dict(attributes(dict(attributes(tuple_)).get(_PROTO, b""))).get(_NUM)
        return number[0] if number else None


class _Ctnetlink:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sequence = 0

    def send(self, kind: int, flags: int, body: bytes = b"") -> Iterator[bytes]:
        """The answer's messages' bodies (after nfgenmsg); raises on an error but ENOENT."""
        self.sequence += 1
        self.sock.send(NFNL_HEADER.pack(NFNL_HEADER.size + len(body), kind, flags, self.sequence, 0, socket.AF_INET,
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
                yield message[NFNL_HEADER.size:]


def forget_udp(namespace: str, *, reply_source: str | None = None, original_destination: str | None = None) -> int:
    """Drop UDP flows, so the next datagram of a client with a fixed source port is
    load-balanced afresh (UDP has no connection end to let the entry expire).
    Returns how many were dropped."""
    def forget() -> int:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
            sock.bind((0, 0))
            ctnetlink = _Ctnetlink(sock)
            doomed = []
            for body in ctnetlink.send(_GET, _REQUEST | _DUMP):
                entry = _Entry(body)
                if entry.protocol != UDP:
                    continue
                if reply_source and entry.reply_source != reply_source:
                    continue
                if original_destination and entry.original_destination != original_destination:
                    continue
                doomed.append(entry.original)
            for original in doomed:  # the tuple goes back as the kernel gave it
                for _ in ctnetlink.send(_DELETE, _REQUEST | _ACK, nest(_ORIG, original)):
                    pass
            return len(doomed)

    return netns.run_in(namespace, forget)
