"""An IPAM plugin run as a plugin of its own (the runtime or a delegating plugin
execs podnet-host-local or podnet-dhcp with the whole network config; its
settings are under "ipam")."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from podnet.cni import result
from podnet.cni.errors import INVALID_CONFIG, CniError
from podnet.cni.request import CniRequest


class Standalone:
    """An IPAM module (add, delete, check, gc and status, each given the ipam
    section) as the dispatcher runs a plugin."""

    def __init__(self, module: ModuleType, args: set[str]) -> None:
        self.module = module
        self.TYPE: str = module.TYPE
        self.args = args  # the CNI_ARGS keys it takes

    @staticmethod
    def _ipam(request: CniRequest) -> dict[str, Any]:
        ipam = request.config.get("ipam")
        if not isinstance(ipam, dict):
            raise CniError(INVALID_CONFIG, "invalid network config", "ipam: must be an object")
        return ipam

    def add(self, request: CniRequest) -> result.Result:
        request.check_args(self.args)
        return self.module.add(request, self._ipam(request))  # type: ignore[no-any-return]

    def delete(self, request: CniRequest) -> None:
        self.module.delete(request, self._ipam(request))

    def check(self, request: CniRequest) -> None:
        self.module.check(request, self._ipam(request))

    def gc(self, request: CniRequest) -> None:
        self.module.gc(request, self._ipam(request))

    def status(self, request: CniRequest) -> None:
        self.module.status(request, self._ipam(request))
