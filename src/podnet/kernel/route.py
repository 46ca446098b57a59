"""A route as a plain value, so renderers can build route sets without netlink."""

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

    def __str__(self) -> str:
        parts = [self.dst]
        if self.via:
            parts.append(f"via {self.via}")
        if self.dev:
            parts.append(f"dev {self.dev}")
        return " ".join(parts)
