"""Errors as the Kubernetes API gives them: a `Status` object with kube-apiserver's
reason and code, so kubectl and client libraries print what they print for a
real cluster (`Error from server (NotFound): pods "x" not found`)."""

from __future__ import annotations

from typing import Any

REASONS = {  # code -> kube-apiserver's StatusReason
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    406: "NotAcceptable", 409: "Conflict", 410: "Expired", 413: "RequestEntityTooLarge", 415: "UnsupportedMediaType",
    422: "Invalid", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
}


class ApiError(Exception):
    """A refusal the client gets as a Status."""

    def __init__(self, code: int, message: str, reason: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        self.code = code
        self.reason = reason or REASONS.get(code, "Unknown")
        self.message = message
        self.details = details
        super().__init__(message)

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    what = f"{resource}.{group}" if group else resource
    return ApiError(404, f'{what} "{name}" not found', details={"name": name, "group": group, "kind": resource})


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    what = f"{resource}.{group}" if group else resource
    return ApiError(409, f'{what} "{name}" already exists', "AlreadyExists",
                    {"name": name, "group": group, "kind": resource})


def conflict(resource: str, name: str, why: str, group: str = "") -> ApiError:
    what = f"{resource}.{group}" if group else resource
    return ApiError(409, f'Operation cannot be fulfilled on {what} "{name}": {why}', "Conflict",
                    {"name": name, "group": group, "kind": resource})


def invalid(kind: str, name: str, field: str, problem: str, group: str = "") -> ApiError:
    """422, as a validation failure: `Deployment.apps "web" is invalid: spec.replicas: Invalid value: ...`."""
    what = f"{kind}.{group}" if group else kind
    return ApiError(422, f'{what} "{name}" is invalid: {field}: {problem}', "Invalid",
                    {"name": name, "group": group, "kind": kind,
                     "causes": [{"reason": "FieldValueInvalid", "message": problem, "field": field}]})


def success(details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = details
    return body
