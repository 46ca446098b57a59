"""`podnet logs POD|deploy/NAME [-c C] [-f] ...`: a container's log, as
kubectl logs prints it, streamed from the lab's API server (the pod's log
subresource) as it arrives.

As kubectl: a pod of several containers shows its default one (the
kubectl.kubernetes.io/default-container annotation, else the first) and says
so on stderr; a Deployment shows the pod kubectl would pick for logging
(scheduled, running, ready longest, restarted most, oldest), saying which on
stderr when it had several.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

from podnet.apiserver.client import TIMEOUT, ApiClient, path
from podnet.cli.words import kind_and_name
from podnet.errors import PodnetError
from podnet.lab.client import cluster_api
from podnet.model import kinds
from podnet.model.fields import Fields
from podnet.model.pod import Pod
from podnet.model.selector import LabelSelector

DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"
DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
PHASE_RANK = {"Running": 0, "Unknown": 1, "Pending": 2}  # kubectl's ByLogging; other phases rank as Running
POD = kinds.of(Pod)


@click.command()
@click.argument("target")
@click.argument("inline_container", metavar="[CONTAINER]", required=False)
@click.option("-c", "--container", default="", help="The container (default: the pod's default one).")
@click.option("-f", "--follow", is_flag=True, help="Go on printing the log as it is written.")
@click.option("--tail", type=int, default=-1, show_default=True, help="The last N lines only (-1: all).")
@click.option("-p", "--previous", is_flag=True, help="The log of the container's previous run.")
@click.option("--timestamps", is_flag=True, help="Each line after the time it was written (RFC 3339).")
@click.option("--since", default="", help="Lines newer than this long ago: 10s, 5m, 1h30m.")
@click.option("--limit-bytes", type=int, default=0, help="At most this many bytes of log (0: no limit).")
@click.option("-n", "--namespace", default="default", show_default=True, help="The Kubernetes namespace.")
@click.option("--lab", "lab_name", help="The lab, when several are up.")
def logs(target: str, inline_container: str | None, container: str, follow: bool, tail: int, previous: bool,
         timestamps: bool, since: str, limit_bytes: int, namespace: str, lab_name: str | None) -> None:
    """Print a container's log: POD, pod/POD or deploy/NAME."""
    if inline_container and container:
        raise click.UsageError("only one of -c or an inline [CONTAINER] argument is allowed")
    if tail < -1:
        raise click.BadParameter("must be greater than or equal to -1", param_hint="--tail")
    if limit_bytes < 0:
        raise click.BadParameter("must be greater than 0", param_hint="--limit-bytes")
    query = {"follow": "true" if follow else "", "previous": "true" if previous else "",
             "timestamps": "true" if timestamps else "", "tailLines": str(tail) if tail >= 0 else "",
             "sinceSeconds": str(since_seconds(since)) if since not in ("", "0") else "",
             "limitBytes": str(limit_bytes) if limit_bytes else ""}
    with cluster_api(lab_name) as api:
        pod = _pod(api, target, namespace)
        query["container"] = inline_container or container or default_container(pod, _warn)
        url = path(POD, namespace, pod["metadata"]["name"], "log")
        _print_stream(api.stream(url, {key: value for key, value in query.items() if value},
                                 timeout=None if follow else TIMEOUT))


def since_seconds(duration: str) -> int:
    """A Go duration (kubectl's --since: 30s, 5m, 1h30m), in whole seconds, at least one."""
    parts = DURATION_PART.findall(duration)
    if not parts or "".join(number + unit for number, unit in parts) != duration:
        raise click.BadParameter(f"{duration!r} is not a duration such as 30s, 5m or 1h30m", param_hint="--since")
    return max(1, round(sum(float(number) * SECONDS[unit] for number, unit in parts)))


def _pod(api: ApiClient, target: str, namespace: str) -> dict[str, Any]:
    """The pod named, or the one kubectl picks of a Deployment's."""
    if "/" not in target:
        return api.get(POD, namespace, target)
    kind, name = kind_and_name(target, None)
    if kind.name == "Pod":
        return api.get(kind, namespace, name)
    if kind.name != "Deployment":
        raise PodnetError(f"cannot get the logs from {kind.plural}: name a pod or a deployment")
    deployment = api.get(kind, namespace, name)
    selector = LabelSelector.parse(Fields((deployment.get("spec") or {}).get("selector") or {}, "spec.selector"))
    pods = api.list(POD, namespace, label_selector=selector.text() if selector.text() != "<none>" else "")
    found = sorted(pods.get("items") or [], key=logging_rank)
    if not found:
        raise PodnetError(f"no pods found for deployment.apps/{name} in namespace {namespace}")
    if len(found) > 1:
        _warn(f"Found {len(found)} pods, using pod/{found[0]['metadata']['name']}")
    return found[0]


def logging_rank(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """kubectl's order for picking a pod to show the logs of: scheduled first,
    then running, ready, ready the longest, restarted the most, the oldest."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ready: Mapping[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    is_ready = ready.get("status") == "True"
    restarts = max((c.get("restartCount", 0) for c in status.get("containerStatuses") or []), default=0)
    return (not spec.get("nodeName"), PHASE_RANK.get(status.get("phase", ""), 0), not is_ready,
            (ready.get("lastTransitionTime") or "~") if is_ready else "", -restarts,
            pod["metadata"].get("creationTimestamp") or "~")


def default_container(pod: Mapping[str, Any], warn: Callable[[str], None]) -> str:
    """The container kubectl shows when none is named, saying which when there was a choice."""
    spec = pod.get("spec") or {}
    containers = [c["name"] for c in spec.get("containers") or []]
    if not containers:
        raise PodnetError(f"pod {pod['metadata']['name']} has no containers")
    annotated = ((pod["metadata"].get("annotations") or {}).get(DEFAULT_CONTAINER) or "")
    if annotated:
        if annotated in _all_names(spec, marked=False):
            return str(annotated)
        warn(f'Default container name "{annotated}" not found in pod {pod["metadata"]["name"]}')
    if len(containers) > 1 or spec.get("initContainers") or spec.get("ephemeralContainers"):
        warn(f'Defaulted container "{containers[0]}" out of: {", ".join(_all_names(spec, marked=True))}')
    return containers[0]


def _all_names(spec: Mapping[str, Any], marked: bool) -> list[str]:
    """Every container's name, kubectl's way: the regular ones, then (ephem), then (init)."""
    names = [c["name"] for c in spec.get("containers") or []]
    for key, mark in (("ephemeralContainers", " (ephem)"), ("initContainers", " (init)")):
        names += [c["name"] + (mark if marked else "") for c in spec.get(key) or []]
    return names


def _warn(line: str) -> None:
    click.echo(line, err=True)


def _print_stream(pieces: Iterable[bytes]) -> None:
    """Each piece written as it comes; a reader that went away (| head) ends it quietly."""
    out = sys.stdout.buffer
    try:
        for piece in pieces:
            out.write(piece)
            out.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing left to flush at exit into the closed pipe
        os.close(devnull)
