"""`podnet rollout restart|status deployment/NAME`, as kubectl's, through the
lab's API: a restart patches the pod template's restartedAt annotation so the
Deployment rolls every pod within maxSurge and maxUnavailable; status watches
the Deployment until its own status says the rollout is done (kubectl's test,
on the counts and observedGeneration the controller writes)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import click

from podnet.apiserver.client import STRATEGIC_MERGE_PATCH, ApiClient
from podnet.cli.words import kind_and_name
from podnet.errors import PodnetError
from podnet.lab.client import cluster_api
from podnet.model.deployment import RESTARTED_AT
from podnet.model.kinds import Kind

PROGRESS_DEADLINE = "ProgressDeadlineExceeded"


@click.group()
def rollout() -> None:
    """Restart a Deployment's pods, or follow its rollout."""


def _deployment(target: str, name: str | None) -> tuple[Kind, str]:
    kind, name = kind_and_name(target, name)
    if kind.name != "Deployment":
        raise click.BadParameter(f"{kind.plural} have no rollouts; deployments do", param_hint="TARGET")
    return kind, name


@rollout.command()
@click.argument("target")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--lab", "lab_name", help="The lab, when several are up.")
def restart(target: str, name: str | None, namespace: str, lab_name: str | None) -> None:
    """Replace every pod of a Deployment, a few at a time."""
    kind, name = _deployment(target, name)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with cluster_api(lab_name) as api:
        api.patch(kind, namespace, name, {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}},
                  STRATEGIC_MERGE_PATCH)
    click.echo(f"deployment.apps/{name} restarted")


@rollout.command()
@click.argument("target")
@click.argument("name", required=False)
@click.option("--timeout", type=float, default=0.0, show_default=True, help="Seconds to wait; 0 waits for ever.")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--lab", "lab_name", help="The lab, when several are up.")
def status(target: str, name: str | None, timeout: float, namespace: str, lab_name: str | None) -> None:
    """Wait for a Deployment's rollout to finish, saying where it stands."""
    kind, name = _deployment(target, name)
    deadline = time.monotonic() + timeout if timeout else None
    said = ""
    with cluster_api(lab_name) as api:
        deployment = api.get(kind, namespace, name)
        while True:
            done, message = rollout_state(deployment)
            if message != said:
                click.echo(message)
                said = message
            if done:
                return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise PodnetError(f"timed out waiting for the rollout of deployment {name!r} after {timeout:g} s")
            deployment = _next_version(api, kind, namespace, name, deployment, left)


def _next_version(api: ApiClient, kind: Kind, namespace: str, name: str, deployment: dict[str, Any],
                  left: float | None) -> dict[str, Any]:
    """The Deployment's next version, from a watch (as it was, when the watch
    ends first; read again, when the watch cannot start from its version)."""
    version = deployment["metadata"]["resourceVersion"]
    for event in api.watch(kind, namespace, version, timeout_seconds=left,
                           field_selector=f"metadata.name={name}"):
        if event.get("type") == "DELETED":
            raise PodnetError(f'deployment "{name}" was deleted')
        if event.get("type") == "ERROR":
            return api.get(kind, namespace, name)
        if event.get("type") in ("ADDED", "MODIFIED"):
            return event["object"]  # type: ignore[no-any-return]
    return deployment


def rollout_state(deployment: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the rollout is done, and kubectl's words for where it stands."""
    name = deployment["metadata"]["name"]
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    if deployment["metadata"].get("generation", 0) > status.get("observedGeneration", 0):
        return False, "Waiting for deployment spec update to be observed..."
    if any(c.get("type") == "Progressing" and c.get("reason") == PROGRESS_DEADLINE
           for c in status.get("conditions") or []):
        raise PodnetError(f'deployment "{name}" exceeded its progress deadline')
    wanted, updated = spec.get("replicas", 1), status.get("updatedReplicas", 0)
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if updated < wanted:
        return False, f"{waiting}{updated} out of {wanted} new replicas have been updated..."
    if status.get("replicas", 0) > updated:
        return False, f"{waiting}{status.get('replicas', 0) - updated} old replicas are pending termination..."
    if status.get("availableReplicas", 0) < updated:
        return False, f"{waiting}{status.get('availableReplicas', 0)} of {updated} updated replicas are available..."
    return True, f'deployment "{name}" successfully rolled out'
