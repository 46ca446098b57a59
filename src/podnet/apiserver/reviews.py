"""The reviews a user asks about themself, answered and never stored, as
kube-apiserver answers them to any authenticated user: may I (`kubectl auth
can-i`), what may I (`can-i --list`), and who am I (`kubectl auth whoami`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podnet.apiserver.auth import MASTERS, READ_VERBS, VIEWERS, User, allowed
from podnet.apiserver.status import ApiError

AUTHENTICATED = "system:authenticated"  # every user with a certificate is in it, as kube-apiserver adds it

Review = Callable[[dict[str, Any], User], dict[str, Any]]


def access(body: dict[str, Any], user: User) -> dict[str, Any]:
    spec = body.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("resourceAttributes") or
                                                    spec.get("nonResourceAttributes"), dict):
        raise ApiError(422, "SelfSubjectAccessReview.spec: Invalid value: exactly one of nonResourceAttributes "
                            "or resourceAttributes must be specified")
    attributes = spec.get("resourceAttributes") or spec.get("nonResourceAttributes")
    verb = str(attributes.get("verb") or "")
    status: dict[str, Any] = {"allowed": allowed(user, verb)}
    if not status["allowed"] and _reads_only(user):
        status["reason"] = f"{VIEWERS} may only get, list and watch"
    return _answer(body, "authorization.k8s.io/v1", "SelfSubjectAccessReview", status)


def rules(body: dict[str, Any], user: User) -> dict[str, Any]:
    verbs = ["*"] if MASTERS in user.groups else sorted(READ_VERBS) if _reads_only(user) else []
    status = {"resourceRules": [{"verbs": verbs, "apiGroups": ["*"], "resources": ["*"]}] if verbs else [],
              "nonResourceRules": [{"verbs": ["*"] if MASTERS in user.groups else ["get"], "nonResourceURLs": ["*"]}],
              "incomplete": False}
    return _answer(body, "authorization.k8s.io/v1", "SelfSubjectRulesReview", status)


def identity(body: dict[str, Any], user: User) -> dict[str, Any]:
    groups = [*user.groups, AUTHENTICATED] if AUTHENTICATED not in user.groups else list(user.groups)
    return _answer(body, "authentication.k8s.io/v1", "SelfSubjectReview",
                   {"userInfo": {"username": user.name, "groups": groups}})


def _reads_only(user: User) -> bool:
    return allowed(user, "get") and not allowed(user, "create")


def _answer(body: dict[str, Any], api_version: str, kind: str, status: dict[str, Any]) -> dict[str, Any]:
    answer = {"apiVersion": api_version, "kind": kind, "metadata": {"creationTimestamp": None}, "status": status}
    if isinstance(body.get("spec"), dict):
        answer["spec"] = body["spec"]
    return answer
