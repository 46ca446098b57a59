"""How long the `podnet` command takes to answer, start-up included (issue 25:
"the CLI starts in a blink"), beside the commands people compare it with.

Measured, each --runs times after --warmups, on a one-node cluster lab of its own
(`clibench`, torn down at the end):
- `podnet --help`;
- `podnet get pods` (asks the lab's API server for the pods' Table and prints it);
- `podnet exec POD -- true` (finds the pod's namespace, then `ip netns exec`).
Anchors: `python -c pass` (the interpreter's own start, podnet's floor),
`kubectl version --client` (a CLI users know), and `ip netns exec NS true` (what
exec runs in the end, so its floor). Goals: --help < 150 ms, get pods < 300 ms,
exec < 250 ms.

Python modules are byte-compiled once (in the warm-ups), as on a user's machine,
into a cache of the bench's own (PYTHONPYCACHEPREFIX: nothing is written into the
tree), even where PYTHONDONTWRITEBYTECODE is set.

Run as root: .venv/bin/python bench/cli_latency.py [--runs 20] [--warmups 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from podnet.lab import names

LAB = "clibench"
POD = "client"
PODNET = str(Path(sys.executable).with_name("podnet"))  # the console script users run
GOALS_MS = {"podnet --help": 150.0, "podnet get pods": 300.0, f"podnet exec {POD} -- true": 250.0}


def lab_file(directory: Path) -> Path:
    """One node and one pod: enough for get to list and exec to enter."""
    lab = {"apiVersion": "podnet.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": LAB},
           "nodes": [{"name": "node1"}],
           "workloads": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD},
                          "spec": {"nodeName": "node1", "containers": [{"name": "echo", "image": "podnet/echo"}]}}]}
    path = directory / f"{LAB}.yaml"
    path.write_text(json.dumps(lab))  # JSON is YAML
    return path


def run(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit status {done.returncode}: {done.stderr.strip()}")


def timings_ms(commands: dict[str, list[str]], runs: int, warmups: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Each command once per round, in turn, so a busy moment of the machine
    falls on all of them alike; the warm-up rounds are not counted."""
    found: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(warmups + runs):
        for name, argv in commands.items():
            started = time.perf_counter()
            run(argv, env)
            if round_ >= warmups:
                found[name].append((time.perf_counter() - started) * 1000)
    return found


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def wait_for_pod(env: dict[str, str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run([PODNET, "exec", "--lab", LAB, POD, "--", "true"], capture_output=True, env=env).returncode:
        if time.monotonic() > deadline:
            raise SystemExit(f"pod {POD} of lab {LAB} did not come up in {timeout:.0f} s")
        time.sleep(0.2)


def commands() -> dict[str, list[str]]:
    """What is measured, by the name printed; ours first, then the anchors."""
    pod_namespace = names.pod_namespace(LAB, "default", POD)
    return {
        "podnet --help": [PODNET, "--help"],
        "podnet get pods": [PODNET, "get", "pods", "--lab", LAB],
        f"podnet exec {POD} -- true": [PODNET, "exec", "--lab", LAB, POD, "--", "true"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "kubectl version --client": [shutil.which("kubectl") or "kubectl", "version", "--client"],
        "ip netns exec NS true": ["ip", "netns", "exec", pod_namespace, "true"],
    }


def report(figures: dict[str, list[float]]) -> None:
    medians = {name: statistics.median(values) for name, values in figures.items()}
    print(f"{'command':<28}{'median':>10}{'p90':>10}{'goal':>10}{'of goal':>9}"
          f"{'x python':>10}{'x kubectl':>11}{'x ip netns':>12}")
    for name, values in figures.items():
        goal = GOALS_MS.get(name)
        ratios = "".join(f"{medians[name] / medians[anchor]:>{width}.2f}" for anchor, width in
                         (("python -c pass", 10), ("kubectl version --client", 11), ("ip netns exec NS true", 12)))
        print(f"{name:<28}{medians[name]:>8.1f}ms{p90(values):>8.1f}ms"
              + (f"{goal:>8.0f}ms{medians[name] / goal:>9.2f}" if goal else f"{'':>19}") + ratios)
    print()
    for name, goal in GOALS_MS.items():
        verdict = "meets" if medians[name] < goal else "MISSES"
        print(f"{name}: median {medians[name]:.0f} ms {verdict} the goal of < {goal:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmups", type=int, default=2)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = lab_file(Path(tmp))
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        try:
            run([PODNET, "lab", "up", str(path)], env)
            wait_for_pod(env)
            figures = timings_ms(commands(), options.runs, options.warmups, env)
        finally:
            subprocess.run([PODNET, "lab", "down", LAB], capture_output=True, env=env)
    print(f"{options.runs} runs each after {options.warmups} warm-ups, in turn (milliseconds, wall clock, "
          "start-up included)")
    report(figures)


if __name__ == "__main__":
    main()
