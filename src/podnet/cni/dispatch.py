"""From one invocation (plugin, environment, stdin) to its exit code and stdout.

The same function runs in the node agent (behind the socket) and, when no agent
is there, in the exec'd plugin process itself.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from podnet.cni import version as versions
from podnet.cni.errors import INTERNAL, CniError
from podnet.cni.request import CniRequest, error_version, parse_request
from podnet.errors import PodnetError

if TYPE_CHECKING:
    from podnet.cni.cleanup import Janitor

log = logging.getLogger("podnet.cni")


def _plugins() -> dict[str, Any]:
    from podnet.cni.plugins import bridge, dhcp, host_local, loopback, portmap
    from podnet.cni.plugins.ipam_plugin import Standalone

    return {plugin.TYPE: plugin for plugin in (bridge, loopback, portmap, Standalone(host_local, {"IP"}),
                                               Standalone(dhcp, set(dhcp.ARGS)))}


def handle(plugin: str, env: Mapping[str, str], stdin: bytes, janitor: Janitor | None = None) -> tuple[int, bytes]:
    """Exit code and stdout, exactly as the plugin binary must produce them; in
    the agent, `janitor` takes interface deletions off the caller's time."""
    try:
        request = replace(parse_request(env, stdin), janitor=janitor)
        if request.command == "VERSION":
            return 0, _dump(versions.version_info())
        module = _plugins().get(plugin)
        if module is None:
            raise CniError(INTERNAL, f"unknown podnet plugin {plugin!r}")
        return 0, _run(module, request)
    except CniError as err:
        return 1, _dump(err.to_json(error_version(stdin)))
    except PodnetError as err:
        return 1, _dump(CniError(INTERNAL, str(err)).to_json(error_version(stdin)))
    except Exception as err:  # a bug: still a CNI error on stdout, with the trace on stderr
        log.exception("%s %s failed", plugin, env.get("CNI_COMMAND"))
        print(f"{plugin}: internal error: {err!r}", file=sys.stderr)
        return 1, _dump(CniError(INTERNAL, f"internal error: {err}").to_json(error_version(stdin)))


def _run(module: Any, request: CniRequest) -> bytes:
    if request.command == "ADD":
        return _dump(module.add(request).render(request.cni_version))
    getattr(module, {"DEL": "delete", "CHECK": "check", "GC": "gc", "STATUS": "status"}[request.command])(request)
    return b""


def _dump(data: object) -> bytes:
    return json.dumps(data, indent=4).encode()
