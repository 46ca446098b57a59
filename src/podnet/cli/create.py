"""The kubectl verbs that make one object from flags: `expose` (a Service in
front of a Deployment's or a Pod's pods) and `run` (one pod). Both create it
through the lab's API, which checks and allocates it as it does a manifest's."""

from __future__ import annotations

from typing import Any

import click

from podnet.cli.words import kind_and_name, kind_of, scope
from podnet.errors import PodnetError
from podnet.lab.client import cluster_api


@click.command()
@click.argument("target")
@click.argument("name", required=False)
@click.option("--port", type=click.IntRange(1, 65535), required=True, help="The Service's port.")
@click.option("--target-port", help="The pods' port (a number or a port name); --port if not given.")
@click.option("--type", "service_type", type=click.Choice(["ClusterIP", "NodePort"]), default="ClusterIP",
              show_default=True)
@click.option("--protocol", type=click.Choice(["TCP", "UDP", "SCTP"]), default="TCP", show_default=True)
@click.option("--name", "service_name", help="The Service's name; the exposed object's if not given.")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--lab", "lab_name", help="The lab, when several are up.")
def expose(target: str, name: str | None, port: int, target_port: str | None, service_type: str, protocol: str,
           service_name: str | None, namespace: str, lab_name: str | None) -> None:
    """Put a Service in front of a Deployment's pods (or one pod's labels):
    podnet expose deployment/web --port 80 [--target-port 8080] [--type NodePort]"""
    kind, name = kind_and_name(target, name)
    if kind.name not in ("Deployment", "Pod"):
        raise click.BadParameter(f"{kind.plural} cannot be exposed; deployments and pods can", param_hint="TARGET")
    with cluster_api(lab_name) as api:
        exposed = api.get(kind, scope(kind, namespace), name)
        meta = exposed.get("metadata") or {}
        selector = (((exposed.get("spec") or {}).get("selector") or {}).get("matchLabels") if kind.name == "Deployment"
                    else meta.get("labels"))
        if not selector:
            raise PodnetError(f"{kind.name.lower()} {name!r} has no matchLabels to make a Service's selector of")
        service_name = service_name or name
        target_value: int | str = int(target_port) if target_port and target_port.isdigit() else target_port or port
        api.create(kind_of("services"), namespace, {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": service_name, "namespace": namespace, "labels": meta.get("labels") or {}},
            "spec": {"type": service_type, "selector": selector,
                     "ports": [{"port": port, "targetPort": target_value, "protocol": protocol}]}})
    click.echo(f"service/{service_name} exposed")


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--labels", "-l", help="k=v,k2=v2; run=NAME if not given, as kubectl's.")
@click.option("--port", type=click.IntRange(1, 65535), help="The port the command listens on (its containerPort).")
@click.option("--image", help="Recorded as the container's image; podnet runs COMMAND (or the echo server).")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--lab", "lab_name", help="The lab, when several are up.")
def run(name: str, command: tuple[str, ...], labels: str | None, port: int | None, image: str | None,
        namespace: str, lab_name: str | None) -> None:
    """Start one pod running COMMAND (the echo server if none):
    podnet run debug --labels app=debug -- sleep 3600"""
    if command and command[0] == "--":
        command = command[1:]
    container: dict[str, Any] = {"name": name}
    if command:
        container["command"] = list(command)
    if image:
        container["image"] = image
    if port:
        container["ports"] = [{"containerPort": port}]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace,
                                                           "labels": _labels(labels, name)},
           "spec": {"containers": [container]}}
    with cluster_api(lab_name) as api:
        api.create(kind_of("pods"), namespace, pod)
    click.echo(f"pod/{name} created")


def _labels(text: str | None, name: str) -> dict[str, str]:
    if not text:
        return {"run": name}
    labels = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--labels")
        labels[key.strip()] = value.strip()
    return labels
