"""A route-netlink socket used synchronously: send one request, read its answer,
and the base every part of a namespace's handle (links.py, addresses.py, ...) shares.

pyroute2 encodes and decodes every message (its ifinfmsg, ifaddrmsg, rtmsg and
ndmsg classes). Its IPRoute transport is not used: it runs an asyncio loop for
each call, about 1 ms, which is ten times what the kernel takes to add a route
or an address. A CNI ADD makes several such calls per pod.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import Any

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, nlmsg
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from podnet.errors import KernelError
from podnet.kernel.nlmsg import NLMSG_DONE, NLMSG_ERROR, error_code, extended_ack_message, messages

_SOL_NETLINK = 270
_NETLINK_EXT_ACK = 11

_ANSWER_TYPES: dict[int, type[nlmsg]] = {16: ifinfmsg, 20: ifaddrmsg, 24: rtmsg, 28: ndmsg}

AF_INET, AF_INET6, AF_BRIDGE = 2, 10, 7
CREATE = NLM_F_CREATE | NLM_F_EXCL  # a new object, refused if it exists


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
            for kind, flags, sequence, body in messages(self._sock.recv(1 << 20)):
                if sequence != self._sequence:
                    continue  # a late answer to an earlier request
                if kind in (NLMSG_ERROR, NLMSG_DONE):
                    code = error_code(body)
                    if code:
                        raise NetlinkFailure(code, extended_ack_message(body, flags) if kind == NLMSG_ERROR else "")
                    return
                answer_class = _ANSWER_TYPES.get(kind & ~3)  # NEW/DEL/GET of one family share a class
                if answer_class is not None:
                    answer = answer_class(body)
                    answer.decode()
                    yield answer


def message(cls: type[nlmsg], attrs: list[tuple[str, Any]] | None = None, **fields: Any) -> nlmsg:
    """A pyroute2 message with its fixed fields and attributes (NLAs) set."""
    msg = cls()
    for key, value in fields.items():
        msg[key] = value
    msg["attrs"] = attrs or []
    return msg


def family(address: str) -> int:
    return AF_INET6 if ":" in address else AF_INET


class RtnlHandle:
    """What every part of a namespace's handle shares: the namespace's name (for
    errors), its path, and its socket; netlink.Netns sets them."""

    name: str
    path: str
    _nl: RtnlSocket

    def _fail(self, what: str, err: NetlinkFailure) -> KernelError:
        return KernelError(f"{self.name}: {what}: {err.reason}")

    def _change(self, what: str, msg_type: int, msg: nlmsg, flags: int = 0, tolerate: tuple[int, ...] = ()) -> None:
        try:
            self._nl.request(msg_type, msg, flags)
        except NetlinkFailure as err:
            if err.code not in tolerate:
                raise self._fail(what, err) from err
