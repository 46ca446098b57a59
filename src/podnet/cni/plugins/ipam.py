"""Calling the network's IPAM plugin: ours in-process, any other type by exec from
CNI_PATH, as a delegating plugin must."""

from __future__ import annotations

from typing import Any

from podnet.cni import result
from podnet.cni.invoke import invoke, request_env
from podnet.cni.plugins import host_local
from podnet.cni.request import CniRequest
from podnet.ipam.ranges import Address


def _in_process(ipam_conf: dict[str, Any]) -> bool:
    return ipam_conf.get("type") == host_local.TYPE


def _delegate(request: CniRequest, command: str, ipam_conf: dict[str, Any]) -> dict[str, Any] | None:
    args = ";".join(f"{k}={v}" for k, v in request.args.items())
    env = request_env(command, request.container_id, request.netns, request.ifname, args)
    return invoke(str(ipam_conf["type"]), request.path, env, request.config)


def add(request: CniRequest, ipam_conf: dict[str, Any]) -> result.Result:
    if _in_process(ipam_conf):
        return host_local.add(request, ipam_conf)
    return result.Result.parse(_delegate(request, "ADD", ipam_conf) or {})


def delete(request: CniRequest, ipam_conf: dict[str, Any]) -> list[Address]:
    """Release the container's addresses; returns them when the IPAM plugin can
    tell (ours can), so DEL knows what to unmasquerade without a netns."""
    if _in_process(ipam_conf):
        return host_local.delete(request, ipam_conf)
    _delegate(request, "DEL", ipam_conf)
    return []


def has_leases(request: CniRequest, ipam_conf: dict[str, Any]) -> bool:
    """Whether any container holds an address of this network (ours can tell)."""
    return bool(host_local.all_leases(request, ipam_conf)) if _in_process(ipam_conf) else False


def check(request: CniRequest, ipam_conf: dict[str, Any]) -> None:
    if _in_process(ipam_conf):
        host_local.check(request, ipam_conf)
    else:
        _delegate(request, "CHECK", ipam_conf)


def gc(request: CniRequest, ipam_conf: dict[str, Any]) -> list[Address]:
    if _in_process(ipam_conf):
        return host_local.gc(request, ipam_conf)
    _delegate(request, "GC", ipam_conf)
    return []


def status(request: CniRequest, ipam_conf: dict[str, Any]) -> None:
    if _in_process(ipam_conf):
        host_local.status(request, ipam_conf)
    else:
        _delegate(request, "STATUS", ipam_conf)
