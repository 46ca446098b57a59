"""Connection tracking entries in a namespace (through the `conntrack` tool)."""

from __future__ import annotations

from podnet.kernel import netns


def forget_udp(namespace: str, *, reply_source: str | None = None, original_destination: str | None = None) -> None:
    """Drop UDP flows, so the next datagram of a client with a fixed source port is
    load-balanced afresh (UDP has no connection end to let the entry expire)."""
    argv = ["conntrack", "-D", "-p", "udp"]
    if reply_source:
        argv += ["--reply-src", reply_source]
    if original_destination:
        argv += ["--orig-dst", original_destination]
    netns.run(namespace, argv, check=False)  # exit 1 just means there was nothing to delete
