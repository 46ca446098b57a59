"""`podnet`: labs, exec, get, and the long-running agent and echo server."""

from __future__ import annotations

import sys

import click

from podnet.errors import PodnetError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="podnet")
def cli() -> None:
    """A Kubernetes-style container network on the real Linux kernel."""


def _register() -> None:
    from podnet.cli import agent, change, cni, create, describe, get, lab, node, observe, policy, rollout, trace, ui

    cli.add_command(lab.lab)
    cli.add_command(lab.exec_command)
    cli.add_command(get.get)
    for command in (change.apply, change.delete, change.scale, change.label, change.annotate, create.expose,
                    create.run, rollout.rollout, describe.describe):
        cli.add_command(command)
    cli.add_command(agent.agent)
    cli.add_command(agent.controller)
    cli.add_command(agent.echo)
    cli.add_command(agent.dns_server)
    cli.add_command(cni.cni)
    cli.add_command(policy.policy)
    cli.add_command(trace.trace_command)
    cli.add_command(observe.observe)
    cli.add_command(ui.ui)
    cli.add_command(node.node)


_register()


def main() -> None:
    """Errors the user can act on become one line and exit status 1, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except PodnetError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
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
