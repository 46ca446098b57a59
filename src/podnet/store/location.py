"""Where a store is, as one string a command line or an environment variable can
carry: a file path is SQLite; `etcd://10.0.0.1:2379,10.0.0.2:2379` is an etcd
cluster, with `?netns=/run/netns/<name>` when it must be reached from inside a
network namespace (a lab's etcd, from outside the lab)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from podnet.store.base import Store, StoreError

ETCD_SCHEME = "etcd://"


def etcd_location(members: list[str], ns_path: str | None = None) -> str:
    """The location of the etcd members given as "host:port"."""
    return f"{ETCD_SCHEME}{','.join(members)}" + (f"?netns={ns_path}" if ns_path else "")


def open_store(location: str) -> Store:
    if not location.startswith(ETCD_SCHEME):
        from podnet.store.sqlite import SqliteStore

        return SqliteStore(location)
    from podnet.store.etcd import EtcdStore

    parts = urlsplit(location)
    endpoints = []
    for member in parts.netloc.split(","):
        host, _, port = member.rpartition(":")
        if not host or not port.isdigit():
            raise StoreError(f"{location}: {member!r} is not host:port")
        endpoints.append((host, int(port)))
    ns_path = parse_qs(parts.query).get("netns", [None])[0]
    return EtcdStore(endpoints, ns_path)
