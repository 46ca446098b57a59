"""`podnet lab up|down|status|node`."""

from __future__ import annotations

import time

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from podnet.cli.columns import print_table
from podnet.cli.tables import NODE_COLUMNS, POD_COLUMNS, SERVICE_COLUMNS, node_rows, pod_rows, service_rows
from podnet.errors import LabError
from podnet.lab import lifecycle, state, webview
from podnet.lab.state import LabRecord

console = Console()


class RichProgress:
    """Lab phases as progress bars, one line each."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: int | None = None

    def phase(self, description: str, total: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=self._progress.tasks[-1].total)
        self._task = self._progress.add_task(description, total=max(total, 1))

    def advance(self, steps: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, steps)


@click.group()
def lab() -> None:
    """Build, inspect and remove labs (clusters or plain topologies)."""


@lab.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--ui", "with_ui", is_flag=True, help="Also serve the web view (podnet ui) and print its address.")
@click.option("--ui-port", default=8050, show_default=True, help="The web view's port, with --ui.")
def up(path: str, with_ui: bool, ui_port: int) -> None:
    """Bring up the lab described in PATH."""
    started = time.monotonic()
    columns = (TextColumn("{task.description:<26}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    bars = Console(stderr=True)  # stdout holds the lab's summary, and nothing at all if it fails
    with Progress(*columns, console=bars, disable=not bars.is_terminal) as progress:
        record = lifecycle.up(path, RichProgress(progress))
    console.print(f"lab [bold]{record.name}[/] is up in {time.monotonic() - started:.1f} s")
    show_status(record)
    if record.apiserver:
        from podnet.lab.apiserver import kubeconfig_path

        console.print(f"kubectl:  export KUBECONFIG={kubeconfig_path(record)}", highlight=False, soft_wrap=True)
    if with_ui:
        if record.kind != "Cluster":
            raise LabError("--ui shows cluster labs; this lab is a topology")
        console.print(f"web view: {webview.start(record, ui_port)}")


@lab.command("kubeconfig")
@click.argument("name", required=False)
@click.option("--user", type=click.Choice(["admin", "view"]), default="admin", show_default=True,
              help="Whose certificate it carries: an admin (system:masters), or a viewer (get, list and watch).")
def kubeconfig_command(name: str | None, user: str) -> None:
    """Print the kubeconfig of the cluster lab NAME (or of the only one up), as
    `kind get kubeconfig` does; ~/.kube/config is never touched."""
    from podnet.lab.apiserver import kubeconfig
    from podnet.lab.client import cluster_record

    click.echo(kubeconfig(cluster_record(name), user), nl=False)


@lab.group()
def node() -> None:
    """Add a node to a running cluster lab, or remove one."""


@node.command("add")
@click.argument("lab_name", metavar="LAB")
@click.argument("name")
@click.option("--bare", is_flag=True, help="Only a machine on the underlay, for `podnet node join` to make a node of.")
def node_add(lab_name: str, name: str, bare: bool) -> None:
    """Join a new node NAME to the cluster lab LAB (a pod subnet leased, an agent started)."""
    from podnet.lab.nodes import add_machine, add_node

    if bare:
        plan = add_machine(lab_name, name)
        console.print(f"machine [bold]{name}[/] is on lab {lab_name}'s underlay at {plan.ip}: "
                      f"podnet exec {name} -- podnet node join ...")
        return
    plan = add_node(lab_name, name)
    console.print(f"node [bold]{name}[/] joined lab {lab_name}: {plan.ip}, pods in {plan.pod_cidr}")


@node.command("remove")
@click.argument("lab_name", metavar="LAB")
@click.argument("name")
def node_remove(lab_name: str, name: str) -> None:
    """Remove node NAME from the cluster lab LAB, with its pods, and release its subnet."""
    from podnet.lab.nodes import remove_node

    pods = remove_node(lab_name, name)
    console.print(f"node [bold]{name}[/] left lab {lab_name}" + (f" with its pods {', '.join(pods)}" if pods else ""))


@lab.command()
@click.argument("name", required=False)
@click.option("--all", "everything", is_flag=True, help="Remove every podnet namespace and lab, found by the pn- prefix.")
@click.option("--prefix", help="With --all: only namespaces starting with this. [default: pn-, or under "
              "PODNET_LAB_SCOPE=S only the scope's, pn-S_]")
def down(name: str | None, everything: bool, prefix: str | None) -> None:
    """Remove a lab and everything it made. Safe to run twice or after a crash."""
    if everything:
        removed = lifecycle.down_all(prefix)
        console.print(f"removed {len(removed)} namespaces" if removed else "nothing to remove")
        return
    name = name or _only_lab_name()
    if name is None:
        console.print("no lab is up")
        return
    had_record = state.load(name) is not None
    removed = lifecycle.down(name)
    if removed or had_record:
        console.print(f"lab {name} is down ({len(removed)} namespaces removed)")
    else:
        console.print(f"lab {name} is not up; nothing to remove")


def _only_lab_name() -> str | None:
    names = state.recorded_names()
    if len(names) > 1:
        raise LabError(f"several labs are up ({', '.join(names)}); name one, or use --all")
    return names[0] if names else None


@lab.command()
@click.argument("name", required=False)
def status(name: str | None) -> None:
    """Show nodes, pods and services (or hosts) of running labs."""
    records = [r for r in state.running() if name is None or r.name == name]
    if name and not records:
        raise LabError(f"no lab named {name} is up")
    if not records:
        console.print("no lab is up")
    for record in records:
        show_status(record)


def show_status(record: LabRecord) -> None:
    console.print(f"[bold]{record.name}[/] ({record.kind}, from {record.source})")
    if record.kind == "Cluster":
        from podnet.lab.client import read_cluster

        nodes, pods, services, slices = read_cluster(record)
        print_table(NODE_COLUMNS, node_rows(nodes), title="nodes")
        print_table(POD_COLUMNS, pod_rows(pods), title="pods")
        if services:
            print_table(SERVICE_COLUMNS, service_rows(services, slices), title="services")
    else:
        rows = [(key.split("/", 1)[1], key.split("/", 1)[0], namespace) for key, namespace in sorted(record.members.items())]
        print_table(("NAME", "KIND", "NETNS"), rows, title="members")
