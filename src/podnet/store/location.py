"""Where a store is, as one string a command line or an environment variable can
carry: a file path is SQLite; `etcd://10.0.0.1:2379,10.0.0.2:2379` is an etcd
cluster, with `netns=/run/netns/<name>` when it must be reached from inside a
network namespace (a lab's etcd, from outside the lab), and `cafile=`, `certfile=`
and `keyfile=` when it speaks TLS, as query parameters."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

from podnet.store.base import Store, StoreError
from podnet.store.tls import TlsFiles

ETCD_SCHEME = "etcd://"


def etcd_location(members: list[str], ns_path: str | None = None, tls: TlsFiles | None = None) -> str:
    """The location of the etcd members given as "host:port"."""
    query = {"netns": ns_path} if ns_path else {}
    if tls is not None:
        query.update((k, v) for k, v in (("cafile", tls.cafile), ("certfile", tls.certfile),
                                         ("keyfile", tls.keyfile)) if v)
    return f"{ETCD_SCHEME}{','.join(members)}" + (f"?{urlencode(query, safe='/')}" if query else "")


def with_tls(location: str, tls: TlsFiles | None) -> str:
    """The location with these TLS files (flags given beside --store)."""
    if tls is None:
        return location
    if not location.startswith(ETCD_SCHEME):
        raise StoreError(f"{location}: TLS files are for an etcd store (etcd://HOST:PORT)")
    parts = urlsplit(location)
    return etcd_location(parts.netloc.split(","), parse_qs(parts.query).get("netns", [None])[0], tls)


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
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    tls = TlsFiles(query["cafile"], query.get("certfile", ""), query.get("keyfile", "")) if "cafile" in query else None
    return EtcdStore(endpoints, query.get("netns"), tls=tls)
