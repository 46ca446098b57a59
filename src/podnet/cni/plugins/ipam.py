"""Calling the network's IPAM plugin: ours in-process (podnet-host-local, and
podnet-dhcp, which asks its daemon), any other type by exec from CNI_PATH, as a
delegating plugin must."""

from __future__ import annotations

from typing import Any

from podnet.cni import result
from podnet.cni.invoke import invoke, request_env
from podnet.cni.plugins import dhcp, host_local
from podnet.cni.request import CniRequest
from podnet.ipam.ranges import Address

OURS = {host_local.TYPE: host_local, dhcp.TYPE: dhcp}


def _ours(ipam_conf: dict[str, Any]) -> Any:
    return OURS.get(str(ipam_conf.get("type")))


def _delegate(request: CniRequest, command: str, ipam_conf: dict[str, Any]) -> dict[str, Any] | None:
    args = ";".join(f"{k}={v}" for k, v in request.args.items())
    env = request_env(command, request.container_id, request.netns, request.ifname, args)
    return invoke(str(ipam_conf["type"]), request.path, env, request.config)


def add(request: CniRequest, ipam_conf: dict[str, Any]) -> result.Result:
    if ours := _ours(ipam_conf):
        return ours.add(request, ipam_conf)  # type: ignore[no-any-return]
    return result.Result.parse(_delegate(request, "ADD", ipam_conf) or {})


def delete(request: CniRequest, ipam_conf: dict[str, Any]) -> list[Address]:
    """Release the container's addresses; returns them when the IPAM plugin can
    tell (ours can), so DEL knows what to unmasquerade without a netns."""
    if ours := _ours(ipam_conf):
        return ours.delete(request, ipam_conf)  # type: ignore[no-any-return]
    _delegate(request, "DEL", ipam_conf)
    return []


def has_leases(request: CniRequest, ipam_conf: dict[str, Any]) -> bool:
    """Whether any container holds an address of this network (host-local can tell)."""
    return ipam_conf.get("type") == host_local.TYPE and bool(host_local.all_leases(request, ipam_conf))


def families(ipam_conf: dict[str, Any]) -> set[int]:
    """The IP versions the network hands out, where its IPAM config says so
    before any ADD (ours can tell); empty when it cannot be known."""
    if ours := _ours(ipam_conf):
        return ours.families(ipam_conf)  # type: ignore[no-any-return]
    return set()


def check(request: CniRequest, ipam_conf: dict[str, Any]) -> None:
    if ours := _ours(ipam_conf):
        ours.check(request, ipam_conf)
    else:
        _delegate(request, "CHECK", ipam_conf)


def gc(request: CniRequest, ipam_conf: dict[str, Any]) -> list[Address]:
    if ours := _ours(ipam_conf):
        return ours.gc(request, ipam_conf)  # type: ignore[no-any-return]
    _delegate(request, "GC", ipam_conf)
    return []


def status(request: CniRequest, ipam_conf: dict[str, Any]) -> None:
    if ours := _ours(ipam_conf):
        ours.status(request, ipam_conf)
    else:
        _delegate(request, "STATUS", ipam_conf)
