"""The CLI starts in a blink (issue 25): a command imports what it runs and no
more. `podnet --help` lists every command from main.py's table without importing
one; `get pods` asks the lab's API server (tests/served.py) without the lab
builder, pyroute2, aiohttp or YAML; `exec` finds its namespace without them
either. Each runs in a fresh interpreter, as a user starts it, against lab
records in a directory of the test's own. The speed itself is measured by
bench/cli_latency.py, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from podnet.cli import main as cli_main
from podnet.lab import names
from podnet.lab.state import LabRecord
from podnet.model.manifest import parse_resource
from podnet.store import resources
from tests.served import served_lab

HEAVY = ("pyroute2", "aiohttp", "scapy", "cryptography", "rich", "yaml", "prometheus_client")
# ssl is not among them: get speaks HTTPS to the lab's API server (exec and --help still load none of it)
TOPOLOGY = f"{names.scope_prefix()}net"

# Runs `podnet ARGS` as the console script does, with os.execvp recording its argv
# instead of replacing the process, and writes what was imported to REPORT.
PROBE = """
import json, os, sys
report, sys.argv = sys.argv[1], ["podnet", *sys.argv[2:]]
execs = []
os.execvp = lambda file, argv: execs.append(argv)
from podnet.cli.main import main
code = 0
try:
    main()
except SystemExit as exit_:
    code = exit_.code
with open(report, "w") as out:
    json.dump({"code": code, "execs": execs, "modules": sorted(sys.modules)}, out)
"""


@pytest.fixture
def labs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cluster lab whose API serves one pod, and a topology lab with a host."""
    monkeypatch.setenv("PODNET_RUN_DIR", str(tmp_path))
    with served_lab("shop") as (_, store):
        resources.put(store, parse_resource({"kind": "Pod", "metadata": {"name": "web-0"}, "spec": {"nodeName": "n1"}}))
        LabRecord(TOPOLOGY, "Topology", "net.yaml", members={"host/h1": names.member_namespace(TOPOLOGY, "h1")}).save()
        yield tmp_path


def podnet(run_dir: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`podnet ARGS` in a fresh interpreter: what it printed, and its report."""
    report = run_dir / "report.json"
    done = subprocess.run([sys.executable, "-c", PROBE, str(report), *args], capture_output=True, text=True,
                          env={**os.environ, "PODNET_RUN_DIR": str(run_dir)}, timeout=60)
    return done, json.loads(report.read_text())


def test_help_lists_every_command_and_imports_none(labs: Path) -> None:
    done, report = podnet(labs, "--help")
    assert report["code"] == 0
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ") and line.split()[0].isalpha()}
    assert set(cli_main.COMMANDS) <= listed
    assert [m for m in report["modules"] if m.startswith("podnet.cli.") and m != "podnet.cli.main"] == []
    assert [m for m in report["modules"] if m.split(".")[0] in (*HEAVY, "ssl")] == []


def test_get_pods_asks_the_api_without_heavy_modules(labs: Path) -> None:
    done, report = podnet(labs, "get", "pods")
    assert (report["code"], done.stderr) == (0, "")
    assert done.stdout.splitlines()[1].split()[:3] == ["web-0", "0/1", "Pending"]  # no kubelet has reported it
    assert [m for m in report["modules"] if m.split(".")[0] in HEAVY] == []
    assert "podnet.lab.cluster" not in report["modules"]


def test_exec_finds_the_namespace_without_heavy_modules(labs: Path) -> None:
    done, report = podnet(labs, "exec", "h1", "--", "true")
    assert (report["code"], done.stderr) == (0, "")
    assert report["execs"] == [["ip", "netns", "exec", names.member_namespace(TOPOLOGY, "h1"), "true"]]
    assert [m for m in report["modules"] if m.split(".")[0] in (*HEAVY, "ssl")] == []
    assert "podnet.lab.cluster" not in report["modules"]


@pytest.mark.parametrize("name", cli_main.COMMANDS)
def test_every_command_in_the_table_loads_and_has_help(name: str) -> None:
    command = cli_main.cli.get_command(click.Context(cli_main.cli), name)
    assert isinstance(command, click.Command) and command.name == name
    result = CliRunner().invoke(cli_main.cli, [name, "--help"], prog_name="podnet")
    assert result.exit_code == 0 and f"Usage: podnet {name} " in result.output


USAGE_ERRORS = {
    "a missing argument": (["get"], "error: missing argument 'KIND'; see 'podnet get --help'"),
    "an unknown command": (["nope"], "error: no such command 'nope'; see 'podnet --help'"),
    "an unknown option": (["get", "pods", "--bogus"], "error: no such option '--bogus'; see 'podnet get --help'"),
    "a bad choice": (["trace", "a", "b", "--proto", "sctp"],
                     "error: invalid value for '--proto': 'sctp' is not one of 'tcp', 'udp', 'icmp'; "
                     "see 'podnet trace --help'"),
    "a subcommand's": (["lab", "up"], "error: missing argument 'PATH'; see 'podnet lab up --help'"),
    "a command's own": (["get", "pods", "-o", "csv"], "error: invalid value for -o: 'csv' is not table, wide, json, "
                        "yaml, name or jsonpath=...; see 'podnet get --help'"),
}


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_usage_errors_are_one_line(case: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    args, line = USAGE_ERRORS[case]
    monkeypatch.setattr(sys, "argv", ["podnet", *args])
    with pytest.raises(SystemExit) as exit_:
        cli_main.main()
    assert (exit_.value.code, capsys.readouterr().err) == (2, line + "\n")
