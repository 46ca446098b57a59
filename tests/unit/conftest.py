from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.api import cluster
from podnet.store.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """A real SQLite store holding a cluster's settings and its built-in namespaces."""
    backend = SqliteStore(tmp_path / "store.db")
    cluster.save(backend, cluster.ClusterConfig("10.244.0.0/16", "10.96.0.0/12", backend="host-gw",
                                                proxy_mode="nftables", iptables_backend="nft"))
    cluster.bootstrap(backend)
    yield backend
    backend.close()
