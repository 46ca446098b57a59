"""`podnet exec`: a command run in a lab's pod, node or host, as `ip netns exec`
runs it. Its path stays short (the lab's records and the namespace's name), since
a request timed from `podnet exec` is mostly podnet's start-up."""

from __future__ import annotations

import os

import click

from podnet.kernel import netns
from podnet.lab.lifecycle import find_member


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.option("--lab", "lab_name", help="The lab to look in, when several are up.")
@click.option("-n", "--namespace", default="default", show_default=True, help="The pod's Kubernetes namespace.")
@click.argument("target")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(lab_name: str | None, namespace: str, target: str, command: tuple[str, ...]) -> None:
    """Run COMMAND in a pod, node or host: podnet exec web-0 -- curl -s 10.244.1.2"""
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise click.UsageError("give a command after --")
    _, network_namespace = find_member(target, lab_name, namespace)
    argv = netns.exec_argv(network_namespace, command)
    os.execvp(argv[0], argv)
