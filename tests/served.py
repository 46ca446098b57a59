"""A cluster lab as podnet's verbs find it, with no namespaces and no root: its
record in a directory of the test's own, a SQLite store holding a cluster's
settings, the lab's CA and its users' certificates, and the real API server
over that store (TLS, client certificates), on 127.0.0.1, in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from podnet.api import cluster
from podnet.apiserver.server import ServerOptions, serve
from podnet.lab import certificates, names
from podnet.lab.apiserver import USERS
from podnet.lab.state import LabRecord
from podnet.store.sqlite import SqliteStore


@contextmanager
def served_lab(name: str) -> Iterator[tuple[LabRecord, SqliteStore]]:
    """The lab's record (saved under PODNET_RUN_DIR, which the caller sets; its
    name in the suite's scope) and its store, while its API server answers."""
    record = LabRecord(f"{names.scope_prefix()}{name}", "Cluster", f"{name}.yaml")
    authority = certificates.authority(record.pki, "podnet-test-ca")
    served = certificates.issue(authority, record.pki, "apiserver", "kube-apiserver", ("127.0.0.1",))
    for stem, (user, groups) in USERS.items():
        certificates.issue(authority, record.pki, stem, user, organizations=groups)
    store = SqliteStore(record.store_path)
    cluster.save(store, cluster.ClusterConfig("10.244.0.0/16", "10.96.0.0/12", backend="host-gw",
                                              proxy_mode="nftables", iptables_backend="nft"))
    cluster.bootstrap(store)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    record.apiserver = f"127.0.0.1:{port}"
    record.save()
    stop = threading.Event()
    options = ServerOptions(served.certfile, served.keyfile, served.cafile, listen_fds=(listener.detach(),))
    thread = threading.Thread(target=serve, args=(store, options, stop), daemon=True)
    thread.start()
    try:
        _wait_listening(port)
        yield record, store
    finally:
        stop.set()
        thread.join(10)
        store.close()


def _wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
