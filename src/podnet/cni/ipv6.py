"""IPv6 on the node: whether the plugin's (host) namespace can carry it.

A node booted with ipv6.disable=1, or with net.ipv6.conf.all.disable_ipv6=1,
refuses every IPv6 address; a network that hands out IPv6 addresses there must
fail before it creates anything, with an error that names the setting, rather
than half-way through with the kernel's "Permission denied".
"""

from __future__ import annotations

from podnet.cni.errors import INVALID_CONFIG, CniError
from podnet.cni.hostns import HOST_NETNS
from podnet.kernel import sysctl

_HOW = "enable IPv6 in the node's network namespace or remove the network's IPv6 range"


def host_ipv6_problem(bridge: str) -> str | None:
    """Why the host namespace cannot put an IPv6 address on `bridge`, or None.
    The bridge's own setting counts when it exists; a new one takes the default's."""
    disabled = sysctl.read_path(HOST_NETNS, "net/ipv6/conf/all/disable_ipv6")
    if disabled is None:
        return "the kernel has IPv6 turned off (ipv6.disable=1 at boot)"
    if disabled != "0":
        return "net.ipv6.conf.all.disable_ipv6 is 1"
    for key in (bridge, "default"):
        value = sysctl.read_path(HOST_NETNS, f"net/ipv6/conf/{key}/disable_ipv6")
        if value is not None:
            return f"net.ipv6.conf.{key}.disable_ipv6 is 1" if value == "1" else None
    return None


def require_host_ipv6(bridge: str, wanted: str, code: int = INVALID_CONFIG) -> None:
    """Refuse an IPv6 address (`wanted`) on a node without IPv6, naming the setting."""
    problem = host_ipv6_problem(bridge)
    if problem:
        raise CniError(code, "IPv6 is disabled on this node", f"the network asks for {wanted} but {problem}; {_HOW}")


def container_ipv6_problem(ns_path: str, ifname: str) -> str | None:
    """Why the container's interface refused an IPv6 address, when its namespace
    says (all.disable_ipv6 is copied to every interface, so one key tells)."""
    if sysctl.read_path(ns_path, f"net/ipv6/conf/{ifname}/disable_ipv6") == "1":
        return f"net.ipv6.conf.{ifname}.disable_ipv6 is 1 in the container's network namespace"
    return None
