"""How a node programs Services: kube-proxy's --proxy-mode, each mode registered
once by name.

  nftables   podnet's own table: verdict maps, O(changes) updates;
  iptables   kube-proxy's iptables layout (KUBE-SERVICES, KUBE-SVC-*, KUBE-SEP-*),
             through iptables-restore of either iptables backend;
  userspace  every Service proxied by the agent itself, as kube-proxy's first mode.

Services annotated podnet.dev/proxy-mode: userspace are proxied in the agent
under every mode. The agent's --proxy-mode, lab files' networking.proxyMode and
--help read MODES; nothing else spells a mode's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from podnet.errors import PodnetError
from podnet.store.snapshot import Controller

if TYPE_CHECKING:
    from podnet.kernel.node import NodeKernel


class UnknownProxyMode(PodnetError):
    """A proxy mode no mode is registered under."""


@dataclass(frozen=True)
class NodeProxy:
    """What a mode needs to know of the node it programs."""

    kernel: NodeKernel
    namespace: str  # the node's network namespace
    node_name: str
    cluster_cidr: str  # the pod network, a CIDR per family (comma-separated): a table per family
    iptables_backend: str


@dataclass(frozen=True)
class ProxyMode:
    name: str
    description: str
    rules: Callable[[NodeProxy], Controller] | None  # the controller of the mode's kernel rules; None: none at all


# The controllers are imported when a node is built, so that the flags, lab files
# and --help that read only the names do not load the proxies.

def _nftables(node: NodeProxy) -> Controller:
    from podnet.proxy.proxier import Proxier

    return Proxier(node.kernel, node.node_name, node.cluster_cidr)


def _iptables(node: NodeProxy) -> Controller:
    from podnet.kernel.iptables import IptablesWriter
    from podnet.proxy.iptables import IptablesProxier

    return IptablesProxier(node.kernel, IptablesWriter(node.namespace, node.iptables_backend), node.node_name,
                           node.cluster_cidr)


NFTABLES = ProxyMode("nftables", "podnet's nftables table (verdict maps, each change applied alone)", _nftables)
IPTABLES = ProxyMode("iptables", "kube-proxy's iptables layout, loaded with iptables-restore", _iptables)
USERSPACE = ProxyMode("userspace", "every Service proxied in the agent, as kube-proxy's first mode", None)
MODES: dict[str, ProxyMode] = {mode.name: mode for mode in (NFTABLES, IPTABLES, USERSPACE)}
DEFAULT = NFTABLES.name


def named(name: str) -> ProxyMode:
    try:
        return MODES[name]
    except KeyError:
        raise UnknownProxyMode(f"{name!r} is not a proxy mode: {', '.join(MODES)}") from None


def controllers(mode: str, node: NodeProxy) -> list[Controller]:
    """The mode's rules, and the agent's own proxies: of the Services annotated
    for it, or under a mode without rules, of every Service."""
    from podnet.proxy.userspace_manager import UserspaceProxies

    chosen = named(mode)
    in_agent = UserspaceProxies(node.namespace, node.node_name, every_service=chosen.rules is None)
    return ([chosen.rules(node)] if chosen.rules else []) + [in_agent]


def help_text() -> str:
    return "; ".join(f"{mode.name}: {mode.description}" for mode in MODES.values())
