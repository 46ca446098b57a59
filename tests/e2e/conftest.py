from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import podnet, renamed_example

CLUSTER_LAB = "test_cluster"

KUBECTL_120 = Path(__file__).parents[1] / "artifacts" / "kubectl-1.20"  # Debian's kubernetes-client, unpacked


@pytest.fixture(scope="session")
def kubectl_120() -> str:
    """Debian's kubectl 1.20, downloaded and unpacked once (never installed: it
    would clash with the kubectl on PATH)."""
    binary = KUBECTL_120 / "usr" / "bin" / "kubectl"
    if not binary.exists():
        KUBECTL_120.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "kubernetes-client"], cwd=KUBECTL_120, check=True,
                       capture_output=True, timeout=300)
        package = next(KUBECTL_120.glob("kubernetes-client_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(package), str(KUBECTL_120)], check=True, timeout=60)
    return str(binary)


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
