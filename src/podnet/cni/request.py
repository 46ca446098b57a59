"""One plugin invocation: the CNI_* environment and the network config on stdin,
validated as the reference skeleton validates them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from podnet.cni import version as versions
from podnet.cni.errors import DECODING_FAILURE, INVALID_CONFIG, INVALID_ENVIRONMENT, UNKNOWN_CONTAINER, CniError

if TYPE_CHECKING:  # parsing a request needs no netlink
    from podnet.cni.cleanup import Janitor

COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")
_REQUIRED_FOR = {
    "CNI_CONTAINERID": {"ADD", "DEL", "CHECK"},
    "CNI_NETNS": {"ADD", "CHECK"},
    "CNI_IFNAME": {"ADD", "DEL", "CHECK"},
    "CNI_PATH": {"ADD", "DEL", "CHECK"},
}
_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
IFNAMSIZ = 15


@dataclass(frozen=True)
class CniRequest:
    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: dict[str, str] = field(default_factory=dict, hash=False)
    path: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict, hash=False)
    janitor: Janitor | None = field(default=None, compare=False, repr=False)  # the agent's, when it serves the call

    @property
    def cni_version(self) -> str:
        return str(self.config.get("cniVersion") or versions.LATEST)

    @property
    def network(self) -> str:
        return str(self.config.get("name", ""))

    def check_args(self, known: set[str]) -> None:
        """CNI_ARGS keys a plugin does not know are an error unless IgnoreUnknown
        is set, as the conventions (and the reference plugins) have it."""
        if self.args.get("IgnoreUnknown", "").lower() in ("1", "true"):
            return
        unknown = sorted(set(self.args) - known - {"IgnoreUnknown"})
        if unknown:
            raise CniError(INVALID_ENVIRONMENT, "unknown CNI_ARGS", f"{', '.join(unknown)} (set IgnoreUnknown=1 to allow them)")


def error_version(stdin: bytes) -> str:
    """The version to answer an error in: the config's, when it can be read."""
    try:
        found = json.loads(stdin).get("cniVersion")
    except (ValueError, AttributeError):
        return versions.LATEST
    return found if found in versions.SUPPORTED_VERSIONS else versions.LATEST


def validate_interface_name(name: str) -> str:
    if not name:
        raise CniError(INVALID_ENVIRONMENT, "interface name is empty")
    if len(name) > IFNAMSIZ:
        raise CniError(INVALID_ENVIRONMENT, "interface name is too long", f"interface name should be less than {IFNAMSIZ + 1} characters")
    if name in (".", ".."):
        raise CniError(INVALID_ENVIRONMENT, "interface name is . or ..")
    if any(c in "/:" or c.isspace() for c in name):
        raise CniError(INVALID_ENVIRONMENT, "interface name contains / or : or whitespace characters", name)
    return name


def parse_cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS: "K=V;K2=V2"."""
    args = {}
    for pair in filter(None, text.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CniError(INVALID_ENVIRONMENT, "invalid CNI_ARGS pair", pair)
        args[key] = value
    return args


def parse_request(env: Mapping[str, str], stdin: bytes) -> CniRequest:
    command = env.get("CNI_COMMAND", "")
    if not command:
        raise CniError(INVALID_ENVIRONMENT, "required env variables [CNI_COMMAND] missing")
    if command not in COMMANDS:
        raise CniError(INVALID_ENVIRONMENT, f"unknown CNI_COMMAND: {command}")
    missing = [name for name, commands in _REQUIRED_FOR.items() if command in commands and not env.get(name)]
    if missing:
        raise CniError(INVALID_ENVIRONMENT, f"required env variables [{','.join(missing)}] missing")
    try:
        config = json.loads(stdin) if stdin.strip() or command != "VERSION" else {}
    except ValueError as err:
        raise CniError(DECODING_FAILURE, "error unmarshall network config", str(err)) from None
    if not isinstance(config, dict):
        raise CniError(DECODING_FAILURE, "error unmarshall network config", "the network config must be a JSON object")
    if command != "VERSION":
        _validate_network_name(config.get("name"))
        versions.check_supported(str(config.get("cniVersion", "0.1.0")))
    container_id = env.get("CNI_CONTAINERID", "")
    if command in ("ADD", "DEL", "CHECK"):
        if not container_id:
            raise CniError(UNKNOWN_CONTAINER, "missing containerID")
        if not _ID.match(container_id):
            raise CniError(INVALID_ENVIRONMENT, "invalid characters in containerID", container_id)
        validate_interface_name(env.get("CNI_IFNAME", ""))
    return CniRequest(
        command=command,
        container_id=container_id,
        netns=env.get("CNI_NETNS", ""),
        ifname=env.get("CNI_IFNAME", ""),
        args=parse_cni_args(env.get("CNI_ARGS", "")),
        path=tuple(filter(None, env.get("CNI_PATH", "").split(":"))),
        config=config,
    )


def _validate_network_name(name: object) -> None:
    if not name:
        raise CniError(INVALID_CONFIG, "missing network name")
    if not isinstance(name, str) or not _ID.match(name):
        raise CniError(INVALID_CONFIG, "invalid characters found in network name", str(name))
