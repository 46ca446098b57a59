"""A container's readinessProbe: how the kubelet asks whether a pod may take
traffic (an HTTP GET, a TCP connect, or a command), how often, and how many
answers in a row turn it Ready or not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podnet.errors import ManifestError
from podnet.model.fields import Fields

ACTIONS = ("httpGet", "tcpSocket", "exec")


@dataclass(frozen=True)
class Probe:
    action: str  # httpGet, tcpSocket or exec
    port: int | str | None = None  # a number or a container port's name (httpGet, tcpSocket)
    path: str = "/"  # httpGet
    command: tuple[str, ...] = ()  # exec
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def parse(cls, fields: Fields) -> Probe:
        given = [a for a in ACTIONS if fields.has(a)]
        if len(given) != 1:
            raise ManifestError(fields.path, f"needs exactly one of {', '.join(ACTIONS)}")
        action = given[0]
        handler = fields.mapping(action, required=True)
        assert handler is not None
        port: int | str | None = None
        command: tuple[str, ...] = ()
        if action == "exec":
            command = handler.strings("command")
            if not command:
                raise ManifestError(handler.at("command"), "is required")
        else:
            port = handler.data.get("port")
            if isinstance(port, bool) or not isinstance(port, (int, str)):
                raise ManifestError(handler.at("port"), "must be a port number or a container port's name")
            if isinstance(port, int) and not 1 <= port <= 65535:
                raise ManifestError(handler.at("port"), f"{port} is out of range 1..65535")
        path = handler.text("path", "/") if action == "httpGet" else "/"
        return cls(action, port, path or "/", command,
                   initial_delay=float(fields.integer("initialDelaySeconds", 0, minimum=0, maximum=3600) or 0),
                   period=float(fields.integer("periodSeconds", 10, minimum=1, maximum=3600) or 10),
                   timeout=float(fields.integer("timeoutSeconds", 1, minimum=1, maximum=3600) or 1),
                   success_threshold=fields.integer("successThreshold", 1, minimum=1, maximum=100) or 1,
                   failure_threshold=fields.integer("failureThreshold", 3, minimum=1, maximum=100) or 3)

    def to_manifest(self) -> dict[str, Any]:
        if self.action == "exec":
            handler: dict[str, Any] = {"command": list(self.command)}
        else:
            handler = {"port": self.port, **({"path": self.path} if self.action == "httpGet" else {})}
        return {self.action: handler, "initialDelaySeconds": int(self.initial_delay), "periodSeconds": int(self.period),
                "timeoutSeconds": int(self.timeout), "successThreshold": self.success_threshold,
                "failureThreshold": self.failure_threshold}
