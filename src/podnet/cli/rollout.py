"""`podnet rollout restart|status deployment/NAME`, as kubectl's: a restart
changes the pod template (its restartedAt annotation) so the Deployment rolls
every pod within maxSurge and maxUnavailable; status follows a rollout until it
is done."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timezone

import click

from podnet.api import writes
from podnet.cli.change import kind_and_name
from podnet.controller.deployments import rollout_status
from podnet.errors import PodnetError
from podnet.lab.client import cluster_store
from podnet.model.deployment import RESTARTED_AT, Deployment
from podnet.model.pod import Pod
from podnet.store import resources

POLL = 0.2


@click.group()
def rollout() -> None:
    """Restart a Deployment's pods, or follow its rollout."""


def _deployment_name(target: str, name: str | None) -> str:
    kind, name = kind_and_name(target, name)
    if kind != "Deployment":
        raise click.BadParameter(f"{kind.lower()}s have no rollouts; deployments do", param_hint="TARGET")
    return name


@rollout.command()
@click.argument("target")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--lab", "lab_name", help="The lab, when several are up.")
def restart(target: str, name: str | None, namespace: str, lab_name: str | None) -> None:
    """Replace every pod of a Deployment, a few at a time."""
    name = _deployment_name(target, name)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def restarted(deployment: Deployment) -> Deployment:
        meta = deployment.template.metadata
        template = replace(deployment.template, metadata=replace(meta, annotations={**meta.annotations, RESTARTED_AT: now}))
        return replace(deployment, template=template)

    with cluster_store(lab_name) as store:
        writes.modify(store, Deployment, namespace, name, restarted)
    click.echo(f"deployment.apps/{name} restarted")


@rollout.command()
@click.argument("target")
@click.argument("name", required=False)
@click.option("--timeout", type=float, default=0.0, show_default=True, help="Seconds to wait; 0 waits for ever.")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--lab", "lab_name", help="The lab, when several are up.")
def status(target: str, name: str | None, timeout: float, namespace: str, lab_name: str | None) -> None:
    """Wait for a Deployment's rollout to finish, saying where it stands."""
    name = _deployment_name(target, name)
    deadline = time.monotonic() + timeout if timeout else None
    said = ""
    with cluster_store(lab_name) as store:
        while True:
            deployment = resources.get(store, Deployment, namespace, name)
            if deployment is None:
                raise writes.NotFound("Deployment", name)
            now = rollout_status(deployment, resources.list_kind(store, Pod)[0])
            if now.message != said:
                click.echo(now.message)
                said = now.message
            if now.done:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise PodnetError(f"timed out waiting for the rollout of deployment {name!r} after {timeout:g} s")
            time.sleep(POLL)
