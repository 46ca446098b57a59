from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import podnet, renamed_example

CLUSTER_LAB = "test_cluster"


@pytest.fixture(scope="session", autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("end-to-end labs need root")


@pytest.fixture(scope="session")
def cluster_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """examples/cluster.yaml, up once for the whole session."""
    path = renamed_example("cluster.yaml", CLUSTER_LAB, tmp_path_factory.mktemp("lab"))
    podnet("lab", "up", str(path))
    yield CLUSTER_LAB
    podnet("lab", "down", CLUSTER_LAB)


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    return tmp_path
