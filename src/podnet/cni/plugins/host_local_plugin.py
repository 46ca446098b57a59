"""podnet-host-local run as a plugin of its own (the runtime or a delegating
plugin execs it with the whole network config; its settings are under "ipam")."""

from __future__ import annotations

from podnet.cni import result
from podnet.cni.errors import INVALID_CONFIG, CniError
from podnet.cni.plugins import host_local
from podnet.cni.request import CniRequest

TYPE = host_local.TYPE


def _ipam(request: CniRequest) -> dict:  # type: ignore[type-arg]
    ipam = request.config.get("ipam")
    if not isinstance(ipam, dict):
        raise CniError(INVALID_CONFIG, "invalid network config", "ipam: must be an object")
    return ipam


def add(request: CniRequest) -> result.Result:
    request.check_args({"IP"})
    return host_local.add(request, _ipam(request))


def delete(request: CniRequest) -> None:
    host_local.delete(request, _ipam(request))


def check(request: CniRequest) -> None:
    host_local.check(request, _ipam(request))


def gc(request: CniRequest) -> None:
    host_local.gc(request, _ipam(request))


def status(request: CniRequest) -> None:
    host_local.status(request, _ipam(request))
