"""`podnet exec`: a command run in a lab's pod, node or host, as `ip netns exec`
runs it. Its path stays short (the lab's records and the namespace's name), since
a request timed from `podnet exec` is mostly podnet's start-up.

Every container of a pod shares its network namespace, so without -c the command
runs there as it is; with -c it also gets that container's environment and
working directory, read from the instance its kubelet runs (kubectl exec through
the API server does the same, by way of the node's kubelet)."""

from __future__ import annotations

import json
import os

import click

from podnet.kernel import netns
from podnet.lab.lifecycle import find_member
from podnet.lab.state import LabRecord


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.option("--lab", "lab_name", help="The lab to look in, when several are up.")
@click.option("-n", "--namespace", default="default", show_default=True, help="The pod's Kubernetes namespace.")
@click.option("-c", "--container", help="The pod's container whose environment and working directory to use.")
@click.argument("target")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(lab_name: str | None, namespace: str, container: str | None, target: str,
                 command: tuple[str, ...]) -> None:
    """Run COMMAND in a pod, node or host: podnet exec web-0 -- curl -s 10.244.1.2"""
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise click.UsageError("give a command after --")
    record, network_namespace = find_member(target, lab_name, namespace)
    argv = netns.exec_argv(network_namespace, command)
    if container is None:
        os.execvp(argv[0], argv)
        return
    spec = _running_spec(record, network_namespace, container)
    if spec is None:
        raise click.ClickException(f'container "{container}" is not running in pod "{target}"')
    if spec.get("workingDir"):
        os.chdir(spec["workingDir"])  # ip netns exec keeps it
    os.execvpe(argv[0], argv, spec["env"])


def _running_spec(record: LabRecord, sandbox: str, container: str) -> dict | None:  # type: ignore[type-arg]
    """The spec of the container's latest instance, as its kubelet wrote it."""
    found = sorted(record.directory.glob(f"cni/*/kubelet/containers/{sandbox}/{container}/*.spec.json"),
                   key=lambda path: int(path.name.split(".", 1)[0]))
    if not found:
        return None
    try:
        return json.loads(found[-1].read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None
