"""podnet-dhcp: IPAM by the DHCP server on the container's segment. The lease is
the DHCP daemon's to get, keep and give back (`podnet cni dhcp-daemon`); this
plugin asks it, over the socket ipam.daemonSocketPath names, as the reference
dhcp plugin asks its daemon. It is IPv4 only, as the reference's is (DHCPv6 is
not spoken): a request that asks it for IPv6 is refused, naming where it asks."""

from __future__ import annotations

import json
import os
import socket
from ipaddress import ip_address, ip_network
from typing import Any

from podnet.cni import result
from podnet.cni.config import runtime_or_args
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


def _is_ipv6(text: str) -> bool:
    try:
        return ip_network(text, strict=False).version == 6
    except ValueError:
        return False


def ipv6_asked(request: CniRequest, ipam: dict[str, Any]) -> str | None:
    """Where the request asks for an IPv6 address (a requested IP, or a subnet
    written into the IPAM config as for host-local), or None."""
    asked = [("CNI_ARGS IP", text) for text in request.args.get("IP", "").split(",") if text]
    asked += [("runtimeConfig.ips", str(text)) for text in runtime_or_args(request.config, "ips") or ()]
    if "subnet" in ipam:
        asked.append(("ipam.subnet", str(ipam["subnet"])))
    ranges = ipam.get("ranges")
    for i, range_set in enumerate(ranges if isinstance(ranges, list) else ()):
        for j, item in enumerate(range_set if isinstance(range_set, list) else ()):
            if isinstance(item, dict) and "subnet" in item:
                asked.append((f"ipam.ranges[{i}][{j}].subnet", str(item["subnet"])))
    return next((f"{where} asks for {text}" for where, text in asked if _is_ipv6(text)), None)


def add(request: CniRequest, ipam: dict[str, Any]) -> result.Result:
    if where := ipv6_asked(request, ipam):
        raise CniError(INVALID_CONFIG, "DHCP IPAM is IPv4 only",
                       f"{where}; DHCPv6 is not spoken, so give IPv6 addresses from podnet-host-local")
    return result.Result.parse(_call(request, ipam, "allocate"))


def families(ipam: dict[str, Any]) -> set[int]:
    return {4}


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
