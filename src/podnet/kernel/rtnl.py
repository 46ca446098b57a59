"""A route-netlink socket used synchronously: send one request, read its answer.

pyroute2 encodes and decodes every message (its ifinfmsg, ifaddrmsg, rtmsg and
ndmsg classes). Its IPRoute transport is not used: it runs an asyncio loop for
each call, about 1 ms, which is ten times what the kernel takes to add a route
or an address. A CNI ADD makes several such calls per pod.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable
from typing import Any

from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, nlmsg
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from podnet.errors import KernelError

_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_SOL_NETLINK = 270
_NETLINK_EXT_ACK = 11
_NLMSGERR_ATTR_MSG = 1
_NLM_F_ACK_TLVS = 0x200
_NLM_F_CAPPED = 0x100

_ANSWER_TYPES: dict[int, type[nlmsg]] = {16: ifinfmsg, 20: ifaddrmsg, 24: rtmsg, 28: ndmsg}


class NetlinkFailure(KernelError):
    """The kernel refused a request; code is the errno, reason its extended ack
    message when it gave one (e.g. "Nexthop has invalid gateway")."""

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason or os.strerror(code)
        super().__init__(self.reason)


class RtnlSocket:
    """Owns one NETLINK_ROUTE socket; the socket belongs, for good, to the
    network namespace it was made in."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._sock.bind((0, 0))
        self._sock.setsockopt(_SOL_NETLINK, _NETLINK_EXT_ACK, 1)
        self._sequence = 0

    def close(self) -> None:
        self._sock.close()

    def request(self, msg_type: int, msg: nlmsg, flags: int = 0) -> list[nlmsg]:
        """Send msg and return the decoded answer (for a GET), or raise
        NetlinkFailure. NLM_F_ACK is added, so a change is confirmed or refused."""
        return self._send(msg_type, msg, NLM_F_REQUEST | NLM_F_ACK | flags)

    def dump(self, msg_type: int, msg: nlmsg) -> list[nlmsg]:
        """Every object of a kind (links, addresses, routes), as decoded messages."""
        return self._send(msg_type, msg, NLM_F_REQUEST | NLM_F_DUMP)

    def _send(self, msg_type: int, msg: nlmsg, flags: int) -> list[nlmsg]:
        self._sequence += 1
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = self._sequence
        msg.encode()
        self._sock.send(msg.data)
        return list(self._answers())

    def _answers(self) -> Iterable[nlmsg]:
        while True:
            data = self._sock.recv(1 << 20)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, flags, sequence, _ = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    return
                body = data[offset: offset + length]
                offset += (length + 3) & ~3
                if sequence != self._sequence:
                    continue  # a late answer to an earlier request
                if kind == _NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", body, _HEADER.size)
                    if code:
                        raise NetlinkFailure(-code, extended_ack_message(body, flags))
                    return
                if kind == _NLMSG_DONE:
                    (code,) = struct.unpack_from("=i", body, _HEADER.size) if len(body) >= 20 else (0,)
                    if code:
                        raise NetlinkFailure(-code)
                    return
                answer_class = _ANSWER_TYPES.get(kind & ~3)  # NEW/DEL/GET of one family share a class
                if answer_class is not None:
                    answer = answer_class(body)
                    answer.decode()
                    yield answer


def extended_ack_message(body: bytes, flags: int) -> str:
    """The kernel's own words for a refusal, from the TLVs after the echoed request."""
    if not flags & _NLM_F_ACK_TLVS:
        return ""
    offset = _HEADER.size + 4
    if flags & _NLM_F_CAPPED:
        offset += _HEADER.size
    else:
        (echoed_length,) = struct.unpack_from("=I", body, offset)
        offset += echoed_length
    while offset + 4 <= len(body):
        length, kind = struct.unpack_from("=HH", body, offset)
        if length < 4:
            break
        if kind == _NLMSGERR_ATTR_MSG:
            return body[offset + 4: offset + length].split(b"\0", 1)[0].decode(errors="replace")
        offset += (length + 3) & ~3
    return ""


def message(cls: type[nlmsg], attrs: list[tuple[str, Any]] | None = None, **fields: Any) -> nlmsg:
    """A pyroute2 message with its fixed fields and attributes (NLAs) set."""
    msg = cls()
    for key, value in fields.items():
        msg[key] = value
    msg["attrs"] = attrs or []
    return msg
