"""What the kubelet reports of each container: its state now (waiting, running
or terminated, with the exit code), the state it was in before its last restart,
whether it is ready, and how often it was restarted — `status.containerStatuses`
and `status.initContainerStatuses` in Kubernetes' words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podnet.model.fields import Fields

STATES = ("waiting", "running", "terminated")


@dataclass(frozen=True)
class ContainerState:
    kind: str  # waiting, running or terminated
    reason: str | None = None  # waiting: ContainerCreating, CrashLoopBackOff...; terminated: Completed, Error
    message: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    started_at: str | None = None  # RFC 3339
    finished_at: str | None = None

    @classmethod
    def parse(cls, fields: Fields | None) -> ContainerState | None:
        if fields is None:
            return None
        for kind in STATES:
            state = fields.mapping(kind)
            if state is not None:
                return cls(kind, state.text("reason"), state.text("message"), state.integer("exitCode"),
                           state.integer("signal"), state.text("startedAt"), state.text("finishedAt"))
        return None

    @property
    def succeeded(self) -> bool:
        return self.kind == "terminated" and self.exit_code == 0

    def to_manifest(self) -> dict[str, Any]:
        fields = {"reason": self.reason, "message": self.message, "exitCode": self.exit_code, "signal": self.signal,
                  "startedAt": self.started_at, "finishedAt": self.finished_at}
        if self.kind == "terminated" and self.exit_code is None:
            fields["exitCode"] = 0
        return {self.kind: {key: value for key, value in fields.items() if value is not None}}


WAITING = ContainerState("waiting", "ContainerCreating")


@dataclass(frozen=True)
class ContainerStatus:
    name: str
    state: ContainerState = WAITING
    last_state: ContainerState | None = None
    ready: bool = False
    restart_count: int = 0
    started: bool = False
    image: str = ""

    @classmethod
    def parse(cls, fields: Fields) -> ContainerStatus:
        return cls(fields.text("name", "") or "", ContainerState.parse(fields.mapping("state")) or WAITING,
                   ContainerState.parse(fields.mapping("lastState")), fields.boolean("ready"),
                   fields.integer("restartCount", 0, minimum=0) or 0, fields.boolean("started"),
                   fields.text("image", "") or "")

    def to_manifest(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state.to_manifest(),
                "lastState": self.last_state.to_manifest() if self.last_state else {},
                "ready": self.ready, "restartCount": self.restart_count, "started": self.started,
                "image": self.image, "imageID": ""}
