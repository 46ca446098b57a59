"""The runtime's half of CNI, as libcni does it: run a network config list's
plugins in order on ADD (each gets the previous result), in reverse on DEL, and
keep each attachment's result for the DEL and CHECK that follow.

The lab wires its pods through here, so they take the same path as a pod under a
real runtime: exec'd plugin binaries, in the node's namespace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podnet.cni import version as versions
from podnet.cni.errors import INVALID_CONFIG, CniError
from podnet.cni.invoke import invoke, request_env


@dataclass(frozen=True)
class Attachment:
    container_id: str
    netns: str
    ifname: str = "eth0"
    args: dict[str, str] = field(default_factory=dict, hash=False)
    capability_args: dict[str, Any] = field(default_factory=dict, hash=False)  # portMappings, ips, mac, ...

    @property
    def cni_args(self) -> str:
        return ";".join(f"{k}={v}" for k, v in self.args.items())


@dataclass(frozen=True)
class NetworkConfigList:
    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    disable_check: bool = False
    disable_gc: bool = False

    @classmethod
    def parse(cls, data: dict[str, Any]) -> NetworkConfigList:
        plugins = data.get("plugins")
        if not isinstance(plugins, list) or not plugins:
            raise CniError(INVALID_CONFIG, "a network config list needs a non-empty 'plugins' list")
        chosen = str(data.get("cniVersion", ""))
        offered = data.get("cniVersions")
        if isinstance(offered, list):  # 1.1.0: the highest version both sides speak
            common = [v for v in offered if v in versions.SUPPORTED_VERSIONS]
            if common:
                chosen = max(common, key=versions.parse)
        return cls(str(data.get("name", "")), versions.check_supported(chosen), tuple(plugins),
                   bool(data.get("disableCheck")), bool(data.get("disableGC")))

    @classmethod
    def load(cls, path: str | Path) -> NetworkConfigList:
        return cls.parse(json.loads(Path(path).read_text()))


class Runtime:
    def __init__(self, plugin_path: list[str], cache_dir: str | Path, host_netns: str | None = None) -> None:
        self.plugin_path = plugin_path
        self.cache_dir = Path(cache_dir)
        self.host_netns = host_netns

    def _config(self, network: NetworkConfigList, plugin: dict[str, Any], attachment: Attachment | None,
                prev: dict[str, Any] | None) -> dict[str, Any]:
        config = {**plugin, "name": network.name, "cniVersion": network.cni_version}
        if prev is not None:
            config["prevResult"] = prev
        if attachment:
            wanted = {k: v for k, v in (plugin.get("capabilities") or {}).items() if v}
            runtime = {k: v for k, v in attachment.capability_args.items() if k in wanted}
            if runtime:
                config["runtimeConfig"] = runtime
        return config

    def _call(self, command: str, network: NetworkConfigList, plugin: dict[str, Any], attachment: Attachment,
              prev: dict[str, Any] | None) -> dict[str, Any] | None:
        env = request_env(command, attachment.container_id, attachment.netns, attachment.ifname, attachment.cni_args)
        return invoke(str(plugin["type"]), self.plugin_path, env, self._config(network, plugin, attachment, prev),
                      host_netns=self.host_netns)

    def _cache_path(self, network: NetworkConfigList, attachment: Attachment) -> Path:
        return self.cache_dir / f"{network.name}-{attachment.container_id}-{attachment.ifname}.json"

    def add(self, network: NetworkConfigList, attachment: Attachment) -> dict[str, Any]:
        prev: dict[str, Any] | None = None
        for plugin in network.plugins:
            prev = self._call("ADD", network, plugin, attachment, prev)
        assert prev is not None
        path = self._cache_path(network, attachment)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"result": prev, "netns": attachment.netns, "capabilityArgs": attachment.capability_args}))
        return prev

    def cached_result(self, network: NetworkConfigList, attachment: Attachment) -> dict[str, Any] | None:
        try:
            return json.loads(self._cache_path(network, attachment).read_text())["result"]
        except (OSError, ValueError, KeyError):
            return None

    def delete(self, network: NetworkConfigList, attachment: Attachment) -> None:
        prev = self.cached_result(network, attachment)
        for plugin in reversed(network.plugins):
            self._call("DEL", network, plugin, attachment, prev)
        self._cache_path(network, attachment).unlink(missing_ok=True)

    def check(self, network: NetworkConfigList, attachment: Attachment) -> None:
        prev = self.cached_result(network, attachment)
        if prev is None:
            raise CniError(INVALID_CONFIG, f"no cached result for {attachment.container_id}; CHECK needs the ADD's result")
        for plugin in network.plugins:
            self._call("CHECK", network, plugin, attachment, prev)

    def gc(self, network: NetworkConfigList, valid: list[Attachment]) -> None:
        attachments = [{"containerID": a.container_id, "ifname": a.ifname} for a in valid]
        for plugin in network.plugins:
            config = {**self._config(network, plugin, None, None), "cni.dev/valid-attachments": attachments}
            invoke(str(plugin["type"]), self.plugin_path, request_env("GC"), config, host_netns=self.host_netns)

    def status(self, network: NetworkConfigList) -> None:
        for plugin in network.plugins:
            invoke(str(plugin["type"]), self.plugin_path, request_env("STATUS"), self._config(network, plugin, None, None),
                   host_netns=self.host_netns)
