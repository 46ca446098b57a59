"""`podnet`: labs, exec, get, and the long-running agent and echo server.

Every command's module is imported only when that command runs: the table below
names each one's module and gives its line for `podnet --help`, so listing the
commands imports none of them. A `podnet get` loads what `get` needs, not the lab
builder, pyroute2 or the agent.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

import click

from podnet.errors import PodnetError


@dataclass(frozen=True)
class Entry:
    """A command: its name, where it is defined, and its line in `podnet --help`."""

    name: str
    module: str
    attribute: str
    summary: str


SECTIONS: tuple[tuple[str, tuple[Entry, ...]], ...] = (
    ("Labs", (
        Entry("lab", "podnet.cli.lab", "lab", "Build, inspect and remove labs (clusters or topologies)."),
        Entry("exec", "podnet.cli.execute", "exec_command", "Run a command in a pod, node or host of a lab."),
        Entry("ui", "podnet.cli.ui", "ui", "Serve the web view of a cluster lab: its map and flows."),
    )),
    ("Objects, as kubectl", (
        Entry("get", "podnet.cli.get", "get", "List objects of any kind, or follow their changes (-w)."),
        Entry("describe", "podnet.cli.describe", "describe", "Show one object in detail, with its recent events."),
        Entry("logs", "podnet.cli.logs", "logs", "Print a container's log, or follow it (-f)."),
        Entry("apply", "podnet.cli.apply", "apply", "Create or update what manifests describe."),
        Entry("delete", "podnet.cli.change", "delete", "Delete objects by name, by kind, or as files describe."),
        Entry("run", "podnet.cli.create", "run", "Start one pod running a command (the echo server if none)."),
        Entry("expose", "podnet.cli.create", "expose", "Put a Service in front of a Deployment's or a pod's labels."),
        Entry("scale", "podnet.cli.change", "scale", "Set a Deployment's replicas."),
        Entry("rollout", "podnet.cli.rollout", "rollout", "Restart a Deployment's pods, or follow its rollout."),
        Entry("label", "podnet.cli.change", "label", "Set or remove labels of an object."),
        Entry("annotate", "podnet.cli.change", "annotate", "Set or remove annotations of an object."),
    )),
    ("Seeing what happens", (
        Entry("trace", "podnet.cli.trace", "trace_command", "Where a new connection goes, step by step, and why."),
        Entry("observe", "podnet.cli.observe", "observe", "Flows every node recorded: let through, dropped, rejected."),
        Entry("policy", "podnet.cli.policy", "policy", "NetworkPolicy: check what is allowed, watch what is dropped."),
    )),
    ("Machines and daemons", (
        Entry("node", "podnet.cli.node", "node", "Join this machine to a cluster, leave it, or see how it stands."),
        Entry("agent", "podnet.cli.agent", "agent", "Run the node agent: routes, CNI, service proxy and pods."),
        Entry("controller", "podnet.cli.agent", "controller", "Run the control plane: scheduler and controllers."),
        Entry("apiserver", "podnet.cli.apiserver", "apiserver", "Serve the cluster's Kubernetes API (kubectl's door)."),
        Entry("dns", "podnet.cli.agent", "dns_server", "Serve the cluster's DNS, and forward other names."),
        Entry("cni", "podnet.cli.cni", "cni", "CNI plugins: install the binaries, serve them here."),
        Entry("echo", "podnet.cli.agent", "echo", "Run the HTTP echo server that lab pods run by default."),
    )),
)

COMMANDS = {entry.name: entry for _, entries in SECTIONS for entry in entries}


class LazyGroup(click.Group):
    """Commands listed from the table, imported when one is asked for by name."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        command: click.Command = getattr(importlib.import_module(entry.module), entry.attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for title, entries in SECTIONS:
            with formatter.section(title):
                formatter.write_dl([(entry.name, entry.summary) for entry in entries])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="podnet")
def cli() -> None:
    """A Kubernetes-style container network on the real Linux kernel."""


def usage_line(err: click.UsageError) -> str:
    """A usage error as one line, as podnet's other errors read: what is wrong,
    then where the usage is (click prints the usage, a hint and the error on three)."""
    what = " ".join(err.format_message().split())
    if what.endswith(".") and not what.endswith("..."):
        what = what[:-1]
    if what[:2].istitle():
        what = what[0].lower() + what[1:]
    where = f"; see '{err.ctx.command_path} --help'" if err.ctx is not None else ""
    return f"error: {what}{where}"


def main() -> None:
    """Errors the user can act on become one line and exit status 1 (2 for
    usage errors, as click's), never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except PodnetError as err:
        click.echo(f"{err.heading}: {err}", err=True)
        sys.exit(1)
    except click.exceptions.NoArgsIsHelpError as err:
        err.show()
        sys.exit(err.exit_code)
    except click.UsageError as err:
        click.echo(usage_line(err), err=True)
        sys.exit(err.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
