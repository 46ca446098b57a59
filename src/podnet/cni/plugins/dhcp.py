"""podnet-dhcp: IPAM by the DHCP server on the container's segment. The lease is
the DHCP daemon's to get, keep and give back (`podnet cni dhcp-daemon`); this
plugin asks it, over the socket ipam.daemonSocketPath names, as the reference
dhcp plugin asks its daemon."""

from __future__ import annotations

import json
import os
import socket
from ipaddress import ip_address
from typing import Any

from podnet.cni import result
from podnet.cni.errors import INTERNAL, INVALID_CONFIG, NOT_AVAILABLE, TRY_AGAIN_LATER, CniError
from podnet.cni.request import CniRequest
from podnet.ipam.ranges import Address

TYPE = "podnet-dhcp"
DEFAULT_SOCKET = "/run/podnet/dhcp.sock"
ARGS = ("K8S_POD_NAME", "K8S_POD_NAMESPACE", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID")  # for ipam.provide
CALL_TIMEOUT = 60.0  # the daemon's own exchanges time out first
ERROR_CODES = {"allocate": TRY_AGAIN_LATER, "status": NOT_AVAILABLE}  # a server silent now may answer later


class NoDaemon(CniError):
    """Nothing answers on the daemon's socket."""


def _socket_path(ipam: dict[str, Any]) -> str:
    path = ipam.get("daemonSocketPath") or DEFAULT_SOCKET
    if not isinstance(path, str):
        raise CniError(INVALID_CONFIG, "invalid network config", "ipam.daemonSocketPath must be a string")
    return path


def _call(request: CniRequest, ipam: dict[str, Any], method: str, **extra: Any) -> dict[str, Any]:
    path = _socket_path(ipam)
    message = {"method": method, "containerID": request.container_id, "network": request.network,
               "ifName": request.ifname, "netns": os.path.abspath(request.netns) if request.netns else "",
               "args": request.args, "ipam": ipam, **extra}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(CALL_TIMEOUT)
            sock.connect(path)
            sock.sendall(json.dumps(message).encode() + b"\n")
            answer = json.loads(sock.makefile("rb").readline() or b"{}")
    except (FileNotFoundError, ConnectionRefusedError):
        raise NoDaemon(NOT_AVAILABLE if method == "status" else TRY_AGAIN_LATER, "the DHCP daemon is not running",
                       f"nothing answers on {path}: start `podnet cni dhcp-daemon`") from None
    except (OSError, ValueError) as err:
        raise CniError(TRY_AGAIN_LATER, "the DHCP daemon did not answer", f"{path}: {err}") from None
    if "error" in answer:
        raise CniError(ERROR_CODES.get(method, INTERNAL), str(answer["error"]))
    return answer  # type: ignore[no-any-return]


def add(request: CniRequest, ipam: dict[str, Any]) -> result.Result:
    return result.Result.parse(_call(request, ipam, "allocate"))


def delete(request: CniRequest, ipam: dict[str, Any]) -> list[Address]:
    """Released by the daemon; with no daemon there is no lease to give back."""
    try:
        answer = _call(request, ipam, "release")
    except NoDaemon:
        return []
    return [ip_address(a) for a in answer.get("released", ())]


def check(request: CniRequest, ipam: dict[str, Any]) -> None:
    _call(request, ipam, "check")


def gc(request: CniRequest, ipam: dict[str, Any]) -> list[Address]:
    valid = request.config.get("cni.dev/valid-attachments") or []
    return [ip_address(a) for a in _call(request, ipam, "gc", valid=valid).get("released", ())]


def status(request: CniRequest, ipam: dict[str, Any]) -> None:
    _call(request, ipam, "status")
