"""A PATCH request's body applied to the object, by its Content-Type: JSON patch,
merge patch or strategic merge patch (server-side apply comes with its field
managers). The result is then written as an update, at the version patched."""

from __future__ import annotations

import json
from typing import Any

from podnet.apiserver.merge_keys import rules_for
from podnet.apiserver.patch import PatchError, json_patch, merge_patch
from podnet.apiserver.status import ApiError
from podnet.apiserver.strategic import strategic_merge_patch

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def patched(content_type: str, current: dict[str, Any], body: bytes, kind: str, query: Any) -> dict[str, Any]:
    if content_type not in (JSON_PATCH, MERGE_PATCH, STRATEGIC):
        raise ApiError(415, f"the body of the request was in an unknown format - accepted media types include: "
                            f"{JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC}")
    try:
        patch = json.loads(body)
    except ValueError as err:
        raise ApiError(400, f"the patch is not JSON: {err}") from None
    try:
        if content_type == JSON_PATCH:
            return json_patch(current, patch)
        if content_type == MERGE_PATCH:
            return merge_patch(current, patch)
        return strategic_merge_patch(current, patch, rules_for(kind))
    except PatchError as err:
        details = {"causes": list(err.causes)} if err.causes else None
        raise ApiError(err.code, err.message, err.reason, details) from None
