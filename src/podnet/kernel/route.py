"""Routes, neighbours and forwarding entries as plain values, so renderers can
build them without netlink."""

from __future__ import annotations

from dataclasses import dataclass

# Routes podnet installs carry this protocol number, so a reconcile can tell them
# from the kernel's own and from a user's, and remove only stale ones of its own.
RTPROT_PODNET = 152
RTPROT_STATIC = 4  # routes set once (a lab node's default route), which reconciles leave alone


@dataclass(frozen=True, order=True)
class Route:
    dst: str  # "10.244.1.0/24" or "default"
    via: str | None = None
    dev: str | None = None
    onlink: bool = False  # the gateway is on the link even without an address there (VXLAN peers)

    def __str__(self) -> str:
        parts = [self.dst]
        if self.via:
            parts.append(f"via {self.via}")
        if self.dev:
            parts.append(f"dev {self.dev}")
        if self.onlink:
            parts.append("onlink")
        return " ".join(parts)


@dataclass(frozen=True, order=True)
class Neighbour:
    """A permanent ARP entry: the peer's VTEP address answers to its VTEP MAC."""

    ip: str
    mac: str
    dev: str


@dataclass(frozen=True, order=True)
class ForwardingEntry:
    """A VXLAN FDB entry: frames for `mac` are sent, encapsulated, to the node at `dst`."""

    mac: str
    dst: str
    dev: str
