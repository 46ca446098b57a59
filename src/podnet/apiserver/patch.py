"""JSON patch (RFC 6902) and JSON merge patch (RFC 7386) of an object, and the
error every patch type raises, carrying the code, reason and message
kube-apiserver answers with, so the server turns it into a Status unchanged.

Pure functions over plain JSON values: the object is never changed in place.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

from podnet.errors import PodnetError

MAX_JSON_PATCH_OPERATIONS = 10000  # kube-apiserver's maxJSONPatchOperations
REASONS = {400: "BadRequest", 409: "Conflict", 413: "RequestEntityTooLarge", 422: "Invalid"}
REJECTED = "the server rejected our request due to an error in our request"  # 422 without causes


class PatchError(PodnetError):
    """A patch kube-apiserver refuses. `message` is its Status message, word for word;
    `detail` says what failed where that message does not (kube-apiserver drops it
    from a failed JSON patch); `causes` are the Status details' causes."""

    def __init__(self, code: int, message: str, detail: str = "",
                 causes: tuple[dict[str, str], ...] = ()) -> None:
        self.code, self.reason, self.message = code, REASONS[code], message
        self.detail, self.causes = detail, causes
        self.heading = f"Error from server ({self.reason})"
        shown = f"{message}: {detail}" if detail else message
        super().__init__(" ".join(shown.split("\n")))


def json_patch(obj: dict[str, Any], ops: Any) -> dict[str, Any]:
    """The object with the RFC 6902 operations applied in order; a failed `test`
    or an operation on a missing path refuses the whole patch (422)."""
    if ops is None:  # Go decodes null into an empty patch
        return copy.deepcopy(obj)
    if not isinstance(ops, list):
        raise PatchError(400, f"json: cannot unmarshal {json_kind(ops)} into Go value of type jsonpatch.Patch")
    for op in ops:
        if op is not None and not isinstance(op, dict):
            raise PatchError(400, f"json: cannot unmarshal {json_kind(op)} into Go value of type jsonpatch.Operation")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchError(413, "Request entity too large: The allowed maximum operations in a JSON patch is "
                              f"{MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}")
    try:
        patched = jsonpatch.JsonPatch(ops).apply(obj)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
        raise PatchError(422, REJECTED, detail=str(error)) from None
    if not isinstance(patched, dict):
        raise PatchError(422, REJECTED, detail="the patched document is not an object")
    return patched


def merge_patch(obj: dict[str, Any], patch: Any) -> dict[str, Any]:
    """RFC 7386: an object in the patch merges key by key, null deletes the key,
    anything else (a list too) replaces the value whole."""
    if not isinstance(patch, dict):
        raise PatchError(400, "Invalid JSON Patch")
    return _merged(obj, patch)


def _merged(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merged(result.get(key), value)
    return result


def json_kind(value: Any) -> str:
    """A decoded JSON value's type, named as Go's encoding/json names it in errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}[type(value)]
