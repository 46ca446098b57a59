"""Up and down as a user meets them: bad input, repeats, crashes and leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from podnet.kernel import netns

from tests import scope
from tests.helpers import EXAMPLES, podnet, renamed_example


def netns_names() -> set[str]:
    return set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())


def write(directory: Path, text: str) -> Path:
    path = directory / "lab.yaml"
    path.write_text(text)
    return path


CLUSTER = "apiVersion: podnet.dev/v1alpha1\nkind: Cluster\nmetadata: {name: test_bad}\nnodes: [{name: n1}, {name: n2}]\n"
POD = "  - {{apiVersion: v1, kind: Pod, metadata: {{name: {name}}}, spec: {{nodeName: {node}}}}}\n"
BAD_INPUT = {
    "overlapping subnets": (CLUSTER + "networking: {podSubnet: 10.0.0.0/8, serviceSubnet: 10.96.0.0/12}\n",
                            "networking.serviceSubnet: 10.96.0.0/12 overlaps networking.podSubnet 10.0.0.0/8"),
    "duplicate pod name": (CLUSTER + "workloads:\n" + POD.format(name="a", node="n1") + POD.format(name="a", node="n2"),
                           "duplicate pod name 'a' in namespace default"),
    "pod on unknown node": (CLUSTER + "workloads:\n" + POD.format(name="a", node="n7"),
                            "workloads[0].spec.nodeName: unknown node 'n7' (nodes: n1, n2)"),
    "malformed YAML": (CLUSTER + "workloads: [\n", "malformed YAML"),
    "not a lab": ("just a string\n", "document: must be a mapping, not a string"),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_is_one_line_and_creates_nothing(case: str, tmp_path: Path) -> None:
    text, message = BAD_INPUT[case]
    before = netns_names()
    proc = podnet("lab", "up", str(write(tmp_path, text)), check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert proc.stdout == ""  # progress and summary are for a lab that is up
    assert netns_names() == before
    assert not Path("/run/podnet/labs/test_bad").exists()


def test_missing_file_and_unknown_pod(tmp_path: Path) -> None:
    proc = podnet("lab", "up", str(tmp_path / "absent.yaml"), check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    proc = podnet("exec", "-n", "nons", "no-such-pod", "--", "true", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith(
        "error: no pod no-such-pod in namespace nons, nor node, host or switch no-such-pod, in any running lab")


def test_up_twice_is_refused_and_down_twice_is_fine(tmp_path: Path) -> None:
    path = renamed_example("veth-pair.yaml", "test_twice", tmp_path)
    podnet("lab", "up", str(path))
    try:
        again = podnet("lab", "up", str(path), check=False)
        assert again.returncode == 1 and "lab test_twice is already up" in again.stderr and again.stdout == ""
    finally:
        podnet("lab", "down", "test_twice")
    assert podnet("lab", "down", "test_twice").returncode == 0
    assert not {ns for ns in netns_names() if ns.startswith("pn-test_twice")}


def test_down_after_a_crash_removes_everything(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all((EXAMPLES / "cluster.yaml").read_text()))
    documents[0]["metadata"]["name"] = "test_crash"
    documents[0]["nodes"] = documents[0]["nodes"][:2]
    documents[0]["workloads"] = documents[0]["workloads"][:1]
    path = tmp_path / "crash.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    podnet("lab", "up", str(path))
    ours = [ns for ns in netns_names() if ns == "pn-test_crash" or ns.startswith("pn-test_crash.")]
    for pid in netns.processes_in(ours):  # agents and pods die without a chance to clean up
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert len(ours) == 6  # fabric, internet, two nodes, client and the cluster DNS
    podnet("lab", "down", "test_crash")
    assert not [ns for ns in netns_names() if ns.startswith("pn-test_crash")]
    assert not Path("/run/podnet/labs/test_crash").exists()


def test_down_all_finds_leftovers_by_prefix(tmp_path: Path) -> None:
    """--prefix narrows --all so the suite leaves other labs (a user's demo) alone."""
    others = {ns for ns in netns_names() if scope.is_ours(ns)}  # the suite's own: a user's lab may come and go
    subprocess.run(["ip", "netns", "add", "pn-test_all-stray"], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", "pn-test_all-stray", "sleep", "60"])
    podnet("lab", "up", str(renamed_example("veth-pair.yaml", "test_all", tmp_path)))
    out = podnet("lab", "down", "--all", "--prefix", "pn-test_all").stdout
    assert "removed 3 namespaces" in out  # red, blue and the stray
    assert {ns for ns in netns_names() if scope.is_ours(ns)} == others
    assert not Path("/run/podnet/labs/test_all").exists()
    assert sleeper.wait(timeout=5) != 0
