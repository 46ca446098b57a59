"""How long `podnet lab up` takes for 3 nodes x 10 pods (DESIGN.md target: < 10 s).

No external anchor exists for this one; it prints our figure against the target.
Run as root: .venv/bin/python bench/lab_up.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

TARGET_SECONDS = 10.0


def lab_file(directory: Path) -> Path:
    lab = {"apiVersion": "podnet.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": "bench-up"},
           "nodes": [{"name": f"node{i}"} for i in range(3)],
           "workloads": [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                          "spec": {"replicas": 30, "selector": {"matchLabels": {"app": "web"}},
                                   "template": {"metadata": {"labels": {"app": "web"}}, "spec": {}}}}]}
    path = directory / "bench-up.yaml"
    path.write_text(yaml.safe_dump(lab))
    return path


def podnet(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "podnet", *args], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        path = lab_file(Path(tmp))
        timings = []
        for _ in range(runs):
            started = time.monotonic()
            podnet("lab", "up", str(path))
            timings.append(time.monotonic() - started)
            podnet("lab", "down", "bench-up")
    median = statistics.median(timings)
    print(f"lab up, 3 nodes x 10 pods: median {median:.2f} s over {runs} runs "
          f"(runs: {', '.join(f'{t:.2f}' for t in timings)})")
    print(f"target {TARGET_SECONDS:.0f} s: {median / TARGET_SECONDS:.2f}x of the budget")


if __name__ == "__main__":
    main()
