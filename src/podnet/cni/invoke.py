"""Executing a plugin binary the way runtimes and delegating plugins do."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from typing import Any

from podnet.cni.errors import INTERNAL, IO_FAILURE, CniError


def find_plugin(plugin_type: str, path: Sequence[str]) -> str:
    for directory in path:
        candidate = os.path.join(directory, plugin_type)
        if os.access(candidate, os.X_OK):
            return candidate
    raise CniError(IO_FAILURE, f"failed to find plugin {plugin_type!r} in path {list(path)}")


def invoke(plugin_type: str, path: Sequence[str], env: dict[str, str], config: dict[str, Any],
           timeout: float = 60, host_netns: str | None = None) -> dict[str, Any] | None:
    """Run the plugin (in host_netns when given, as a runtime on that node would);
    its result as a dict (None when it prints nothing), or its error raised as a
    CniError with the plugin's own code and message."""
    argv = [find_plugin(plugin_type, path)]
    if host_netns:
        from podnet.kernel.netns import enter_argv

        argv = enter_argv(host_netns, argv)
    proc = subprocess.run(argv, input=json.dumps(config).encode(), capture_output=True, timeout=timeout,
                          env={**os.environ, **env, "CNI_PATH": ":".join(path)})
    output = proc.stdout.strip()
    parsed: Any = None
    if output:
        try:
            parsed = json.loads(output)
        except ValueError:
            raise CniError(INTERNAL, f"plugin {plugin_type} printed something that is not JSON",
                           output[:200].decode(errors="replace")) from None
    if proc.returncode != 0:
        if isinstance(parsed, dict) and "code" in parsed:
            raise CniError(int(parsed["code"]), str(parsed.get("msg", "")), str(parsed.get("details", "")))
        raise CniError(INTERNAL, f"plugin {plugin_type} failed with exit code {proc.returncode}",
                       proc.stderr.decode(errors="replace").strip()[:200])
    return parsed if isinstance(parsed, dict) else None


def request_env(command: str, container_id: str = "", netns: str = "", ifname: str = "", args: str = "") -> dict[str, str]:
    return {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
            "CNI_IFNAME": ifname, "CNI_ARGS": args}
