"""A PATCH request's body applied to the object, by its Content-Type: JSON patch,
merge patch, strategic merge patch, or server-side apply (which owns fields by
manager, and refuses what another manager owns). The result is then written as
an update, at the version patched; every write records its manager
(managed.py), so an apply can find who owns what."""

from __future__ import annotations

import json
from typing import Any

from podnet.apiserver.managed import conflict_error, record_update, server_side_apply
from podnet.apiserver.merge_keys import rules_for
from podnet.apiserver.patch import PatchError, json_patch, merge_patch
from podnet.apiserver.status import ApiError
from podnet.apiserver.strategic import strategic_merge_patch

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def patched(content_type: str, current: dict[str, Any] | None, body: bytes, kind: str, query: Any,
            manager: str, subresource: str = "") -> dict[str, Any]:
    """The object after the patch, with its managers recorded; current is None only
    for a server-side apply that creates the object."""
    try:
        if content_type == APPLY:
            return _applied(current, body, query, subresource)
        if content_type not in (JSON_PATCH, MERGE_PATCH, STRATEGIC):
            raise ApiError(415, f"the body of the request was in an unknown format - accepted media types include: "
                                f"{JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC}, {APPLY}")
        if current is None:
            raise ApiError(404, "the object to patch does not exist")
        try:
            patch = json.loads(body)
        except ValueError as err:
            raise ApiError(400, f"the patch is not JSON: {err}") from None
        if content_type == JSON_PATCH:
            after = json_patch(current, patch)
        elif content_type == MERGE_PATCH:
            after = merge_patch(current, patch)
        else:
            after = strategic_merge_patch(current, patch, rules_for(kind))
        return record_update(current, after, manager, subresource=subresource)
    except PatchError as err:
        details = {"causes": list(err.causes)} if err.causes else None
        raise ApiError(err.code, err.message, err.reason, details) from None


def _applied(current: dict[str, Any] | None, body: bytes, query: Any, subresource: str) -> dict[str, Any]:
    manager = query.get("fieldManager")
    if not manager:
        raise ApiError(400, "PATCH with Content-Type application/apply-patch+yaml requires fieldManager")
    import yaml

    try:
        applied = yaml.safe_load(body)
    except yaml.YAMLError as err:
        raise ApiError(400, f"error decoding YAML: {err}") from None
    if not isinstance(applied, dict):
        raise ApiError(400, "the applied configuration must be an object")
    result, conflicts = server_side_apply(current, applied, manager, query.get("force") in ("true", "1"),
                                          subresource=subresource)
    if conflicts:
        raise conflict_error(conflicts)
    return result


def recorded(before: dict[str, Any] | None, after: dict[str, Any], manager: str,
             subresource: str = "") -> dict[str, Any]:
    """An ordinary write (create or update) with its manager recorded."""
    return record_update(before, after, manager, subresource=subresource)
