"""The pod subresources a node's kubelet serves: exec, attach, port-forward and
log. What each is in discovery and to the authorizer, and how a request for one
becomes the kubelet's path and query, refused first, in kube-apiserver's words,
when the pod cannot serve it (pkg/registry/core/pod: streamLocation,
LogLocation, validateContainer; ValidatePodLogOptions). Where only kubectl
checks (an exec with no command, into a completed pod) it is kubectl's words,
so every client hears them.

Pure: a request's query and the pod's stored document in, the kubelet's target
out, so every refusal is tested without a network."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

from multidict import MultiMapping

from podnet.apiserver.status import ApiError

COMPLETED = ("Succeeded", "Failed")  # phases whose containers are gone
INT64 = 2**63


@dataclass(frozen=True)
class Subresource:
    name: str  # the URL's word: exec
    kind: str  # what discovery says it answers with
    verbs: tuple[str, ...]  # as discovery lists them
    verb: str  # what the authorizer is asked, whatever the method: a WebSocket's GET on exec is a create too
    methods: tuple[str, ...]  # SPDY clients POST, WebSocket clients GET
    kubelet_word: str  # the kubelet's path starts with it
    upgrade: bool  # proxied as a connection switched to another protocol; else an answer streamed (log)


ATTACH = Subresource("attach", "PodAttachOptions", ("create", "get"), "create", ("GET", "POST"), "attach", True)
EXEC = Subresource("exec", "PodExecOptions", ("create", "get"), "create", ("GET", "POST"), "exec", True)
LOG = Subresource("log", "Pod", ("get",), "get", ("GET",), "containerLogs", False)
PORTFORWARD = Subresource("portforward", "PodPortForwardOptions", ("create", "get"), "create", ("GET", "POST"),
                          "portForward", True)
SUBRESOURCES = {s.name: s for s in (ATTACH, EXEC, LOG, PORTFORWARD)}


@dataclass(frozen=True)
class StreamRequest:
    """A request's options, read from its query before the pod is."""
    subresource: Subresource
    container: str  # as asked; "" for the pod's only one
    query: tuple[tuple[str, str], ...]  # the kubelet's query
    previous: bool = False  # a log of the container's last terminated instance


@dataclass(frozen=True)
class Location:
    node: str
    target: str  # the kubelet's path and query


def read(subresource: Subresource, pod_name: str, query: MultiMapping[str]) -> StreamRequest:
    """The request's options as the kubelet's query; 400 for what does not parse,
    422 for a log's options out of range."""
    container = query.get("container", "")
    if subresource is LOG:
        return _log_options(pod_name, container, query)
    if subresource is PORTFORWARD:
        ports = query.getall("ports", [])
        for port in ports:
            for piece in port.split(","):
                _integer(piece, 2**31)
        return StreamRequest(subresource, "", tuple(("ports", p) for p in ports))
    commands = query.getall("command", []) if subresource is EXEC else []
    if subresource is EXEC and not commands:
        raise ApiError(400, "you must specify at least one command for the container")
    stdio = (("input", _flag(query, "stdin", False)), ("output", _flag(query, "stdout", True)),
             ("error", _flag(query, "stderr", True)), ("tty", _flag(query, "tty", False)))
    return StreamRequest(subresource, container,
                         (*(("command", c) for c in commands), *((word, "1") for word, on in stdio if on)))


def locate(request: StreamRequest, pod: dict[str, Any]) -> Location | None:
    """Where on which node the kubelet serves the request; None for a log of a pod
    on no node yet (kube-apiserver answers it with an empty log)."""
    subresource = request.subresource
    name = str(pod["metadata"]["name"])
    namespace = str(pod["metadata"].get("namespace") or "default")
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = status.get("phase")
    if subresource in (EXEC, ATTACH) and phase in COMPLETED:
        doing = "exec into" if subresource is EXEC else "attach"
        raise ApiError(400, f"cannot {doing} a container in a completed pod; current phase is {phase}")
    path = [subresource.kubelet_word, namespace, name]
    if subresource is not PORTFORWARD:
        container = _container(request.container, name, spec)
        if subresource is LOG and spec.get("nodeName"):
            _check_log(status, container, name, request.previous)
        path.append(container)
    node = spec.get("nodeName")
    if not node:
        if subresource is LOG:
            return None
        raise ApiError(400, f"pod {name} does not have a host assigned")
    target = "/" + "/".join(quote(str(part), safe="") for part in path)
    return Location(str(node), f"{target}?{urlencode(request.query)}" if request.query else target)


def container_names(spec: dict[str, Any]) -> list[str]:
    """Every container a request may name, in kube-apiserver's order: init, regular, ephemeral."""
    return [str(c.get("name")) for key in ("initContainers", "containers", "ephemeralContainers")
            for c in spec.get(key) or () if isinstance(c, dict)]


def _container(asked: str, pod_name: str, spec: dict[str, Any]) -> str:
    names = container_names(spec)
    choices = f"choose one of: [{' '.join(names)}]"
    if asked:
        if asked not in names:
            raise ApiError(400, f"container {asked} is not valid for pod {pod_name}, {choices}")
        return asked
    regular = [c for c in spec.get("containers") or () if isinstance(c, dict)]
    if len(regular) == 1:
        return str(regular[0].get("name"))
    if not regular:
        raise ApiError(400, f"a container name must be specified for pod {pod_name}")
    raise ApiError(400, f"a container name must be specified for pod {pod_name}, {choices}")


def _check_log(status: dict[str, Any], container: str, pod_name: str, previous: bool) -> None:
    """Refused as the kubelet refuses it (validateContainerLogStatus), from the
    status it last wrote; a container it has not reported yet is its to answer."""
    statuses = [s for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")
                for s in status.get(key) or () if isinstance(s, dict)]
    found = next((s for s in statuses if s.get("name") == container), None)
    if found is None:
        return
    state, last = found.get("state") or {}, (found.get("lastState") or {}).get("terminated")
    which = f'container "{container}" in pod "{pod_name}"'
    if previous:
        if not last:
            raise ApiError(400, f"previous terminated {which} not found")
        return
    if state.get("running") is not None or state.get("terminated") is not None or last:
        return
    waiting = state.get("waiting")
    if waiting is None:
        raise ApiError(400, f"{which} is waiting to start - no logs yet")
    reason = str(waiting.get("reason") or "")
    why = {"ErrImagePull": "image can't be pulled", "ImagePullBackOff": "trying and failing to pull image"}
    raise ApiError(400, f"{which} is waiting to start: {why.get(reason, reason)}")


def _log_options(pod_name: str, container: str, query: MultiMapping[str]) -> StreamRequest:
    numbers = {key: _integer(query[key], INT64) for key in ("sinceSeconds", "tailLines", "limitBytes") if key in query}
    since_time = _rfc3339(query["sinceTime"]) if "sinceTime" in query else None
    problems = []
    if numbers.get("tailLines", 0) < 0:
        problems.append(("tailLines", f"Invalid value: {numbers['tailLines']}: must be greater than or equal to 0"))
    if numbers.get("limitBytes", 1) < 1:
        problems.append(("limitBytes", f"Invalid value: {numbers['limitBytes']}: must be greater than 0"))
    if "sinceSeconds" in numbers and since_time:
        problems.append(("", "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"))
    elif numbers.get("sinceSeconds", 1) < 1:
        problems.append(("sinceSeconds", f"Invalid value: {numbers['sinceSeconds']}: must be greater than 0"))
    if problems:
        raise _invalid_log_options(pod_name, problems)
    flags = [(word, "true") for word in ("follow", "previous", "timestamps") if _flag(query, word, False)]
    valued = [(key, str(numbers[key])) for key in ("sinceSeconds",) if key in numbers]
    valued += [("sinceTime", since_time)] if since_time else []
    valued += [(key, str(numbers[key])) for key in ("tailLines", "limitBytes") if key in numbers]
    return StreamRequest(LOG, container, (*flags, *valued), previous=_flag(query, "previous", False))


def _invalid_log_options(pod_name: str, problems: list[tuple[str, str]]) -> ApiError:
    """422, as kube-apiserver's NewInvalid words a list of field errors."""
    said = [f"{field}: {problem}" for field, problem in problems]
    listed = said[0] if len(said) == 1 else f"[{', '.join(said)}]"
    causes = [{"reason": "FieldValueForbidden" if problem.startswith("Forbidden") else "FieldValueInvalid",
               "message": problem, "field": field} for field, problem in problems]
    return ApiError(422, f'PodLogOptions "{pod_name}" is invalid: {listed}', "Invalid",
                    {"name": pod_name, "group": "", "kind": "PodLogOptions", "causes": causes})


def _flag(query: MultiMapping[str], name: str, default: bool) -> bool:
    """As kube-apiserver reads a boolean from a query: absent is the default, 0 and false are false, all else true."""
    values = query.getall(name, [])
    if not values:
        return default
    return not (values[0] == "0" or values[0].lower() == "false")


def _integer(text: str, bound: int) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ApiError(400, f'strconv.ParseInt: parsing "{text}": invalid syntax')
    value = int(text)
    if not -bound <= value < bound:
        raise ApiError(400, f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


def _rfc3339(text: str) -> str:
    """The time in UTC, to the second, as kube-apiserver passes it on."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", text):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            pass
    raise ApiError(400, f'parsing time "{text}" as "2006-01-02T15:04:05Z07:00": not an RFC 3339 time')
