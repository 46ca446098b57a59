"""A container's environment as the kubelet makes it: what every podnet pod is
given (its name, namespace and IP, the node, the store, the cluster's DNS), then
the container's own `env` in order, with `valueFrom` resolved from the pod's
fields, a ConfigMap's key or a Secret's key. A reference that can't be resolved
keeps the container from starting (CreateContainerConfigError), in kubelet's words.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from typing import Any

from podnet.errors import PodnetError
from podnet.model.env import EnvVar, KeyRef
from podnet.model.pod import Container, Pod
from podnet.model.stored import ConfigMap, Secret
from podnet.store import resources
from podnet.store.base import Store

_LABEL_PATH = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ConfigError(PodnetError):
    """The container can't be given its environment."""


def container_env(store: Store, pod: Pod, container: Container, base: dict[str, str]) -> dict[str, str]:
    """The whole environment: ours, the pod's, then the container's own."""
    env = {**os.environ, "POD_NAME": pod.metadata.name, "POD_NAMESPACE": pod.metadata.namespace,
           "POD_IP": pod.pod_ip or "", "NODE_NAME": pod.node_name or "", **base}
    declared: dict[str, str] = {}
    for variable in container.env:  # each may refer to those declared before it, as kubelet expands them
        declared[variable.name] = expand(_value(store, pod, variable), declared)
    return {**env, **declared}


def expand(text: str, variables: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` references: replaced by the variable's value when it
    is defined, kept as written when not; `$$` is a literal `$` (so `$$(VAR)`
    stays `$(VAR)`). Used for env values, and a container's command and args."""
    out = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2:end]
            out.append(variables[name] if name in variables else text[i:end + 1])
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _value(store: Store, pod: Pod, variable: EnvVar) -> str:
    if variable.field_path is not None:
        return field_value(pod, variable.field_path)
    if variable.config_map is not None:
        return _key(store, pod.metadata.namespace, variable.config_map, "configmap", ConfigMap)
    if variable.secret is not None:
        return _key(store, pod.metadata.namespace, variable.secret, "secret", Secret)
    return variable.value


def field_value(pod: Pod, path: str) -> str:
    """A fieldRef's value, of the fields the model allows (model/env.py)."""
    matched = _LABEL_PATH.match(path)
    if matched:
        found = pod.metadata.labels if matched.group(1) == "labels" else pod.metadata.annotations
        return found.get(matched.group(2), "")
    return {"metadata.name": pod.metadata.name, "metadata.namespace": pod.metadata.namespace,
            "metadata.uid": pod.uid, "spec.nodeName": pod.node_name or "", "spec.serviceAccountName": "default",
            "status.podIP": pod.pod_ip or "", "status.podIPs": ",".join(pod.pod_ips), "status.hostIP": pod.host_ip or ""}.get(path, "")


def _key(store: Store, namespace: str, ref: KeyRef, what: str, kind: type[Any]) -> str:
    found = resources.get(store, kind, namespace, ref.name)
    if found is None:
        if ref.optional:
            return ""
        raise ConfigError(f'{what} "{ref.name}" not found')
    document = found.origin.document if found.origin else {}
    data = document.get("data") or {}
    if ref.key in data:
        value = data[ref.key]
        if kind is Secret:
            try:
                return base64.b64decode(value).decode(errors="replace")
            except (binascii.Error, ValueError):
                raise ConfigError(f'secret "{ref.name}" holds key {ref.key} not in base64') from None
        return str(value)
    if kind is Secret and ref.key in (document.get("stringData") or {}):
        return str(document["stringData"][ref.key])
    if ref.optional:
        return ""
    word = "ConfigMap" if kind is ConfigMap else "Secret"
    raise ConfigError(f"couldn't find key {ref.key} in {word} {namespace}/{ref.name}")
