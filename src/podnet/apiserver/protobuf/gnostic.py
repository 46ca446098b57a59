"""An OpenAPI v2 (Swagger 2.0) document in gnostic's protobuf form, which
kubectl up to 1.28 downloads to validate objects, to explain kinds and (1.20) to
see that the server dry-runs. Field numbers are from gnostic's own descriptor
(openapi_v2.json, made by extract.py); JSON maps onto its messages by name
(`basePath` to base_path, `$ref` to _ref), `x-` keys become vendor extensions
(their values YAML, as gnostic keeps them), and the few places JSON chooses by
shape or by `in` (a schema or a bool, a body or a query parameter) choose the
oneof's member as gnostic's own compiler does."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

import yaml

from podnet.apiserver.protobuf.wire import encode_double, encode_field

PREFIX = "openapi.v2."
NAMED = {  # message -> the number of its list of Named* messages: a JSON object keyed by name
    "Definitions": 1, "Properties": 1, "Paths": 2, "Responses": 1, "ParameterDefinitions": 1,
    "ResponseDefinitions": 1, "SecurityDefinitions": 1, "Headers": 1, "Examples": 1,
}
NON_BODY = {"header": 1, "formData": 2, "query": 3, "path": 4}  # NonBodyParameter's members by `in`


@functools.cache
def _messages() -> dict[str, dict[str, list[str]]]:
    text = resources.files(__package__).joinpath("openapi_v2.json").read_text()
    return json.loads(text)["messages"]  # type: ignore[no-any-return]


def document(value: dict[str, Any]) -> bytes:
    return _message(value, PREFIX + "Document")


def _message(value: Any, name: str) -> bytes:
    short = name.removeprefix(PREFIX)
    if short == "Any":
        return encode_field(2, yaml.safe_dump(value, default_flow_style=False).encode())
    if short == "TypeItem":
        return b"".join(encode_field(1, t.encode()) for t in ([value] if isinstance(value, str) else value))
    if short == "ItemsItem":
        return b"".join(encode_field(1, _message(s, PREFIX + "Schema")) for s in
                        (value if isinstance(value, list) else [value]))
    if short == "AdditionalPropertiesItem":
        return encode_field(2, int(value)) if isinstance(value, bool) else \
            encode_field(1, _message(value, PREFIX + "Schema"))
    if short in ("ParametersItem", "ResponseValue"):  # a reference, or the thing itself
        if "$ref" in value:
            return encode_field(2, encode_field(1, value["$ref"].encode()))
        return encode_field(1, _message(value, PREFIX + ("Parameter" if short == "ParametersItem" else "Response")))
    if short == "Parameter":
        if value.get("in") == "body":
            return encode_field(1, _message(value, PREFIX + "BodyParameter"))
        return encode_field(2, _message(value, PREFIX + "NonBodyParameter"))
    if short == "NonBodyParameter":
        member = NON_BODY[value.get("in", "query")]
        return encode_field(member, _message(value, _messages()[name][str(member)][1]))
    if short == "SchemaItem":
        return encode_field(2 if value.get("type") == "file" else 1,
                            _message(value, PREFIX + ("FileSchema" if value.get("type") == "file" else "Schema")))
    table = _messages()[name]
    if short in NAMED:
        return _named(value, table, NAMED[short])
    by_name = {spec[0]: (int(number), spec) for number, spec in table.items()}
    out = []
    for key, item in value.items():
        if key.startswith("x-") and "vendor_extension" in by_name:
            number, _ = by_name["vendor_extension"]
            out.append(encode_field(number, encode_field(1, key.encode()) +
                                    encode_field(2, _message(item, PREFIX + "Any"))))
            continue
        field = "_ref" if key == "$ref" else re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()
        if field not in by_name:
            continue  # what gnostic has no field for (OpenAPI v3's words) is left out, as its compiler does
        number, (_, type_name, how) = by_name[field]
        for one in item if how == "repeated" else [item]:
            out.append(_field(number, one, type_name))
    return b"".join(out)


def _named(value: dict[str, Any], table: dict[str, list[str]], number: int) -> bytes:
    """{name: value} as repeated Named* messages; `x-` keys as vendor extensions."""
    named_type = table[str(number)][1]
    value_type = _messages()[named_type]["2"][1]
    extension = next((int(n) for n, spec in table.items() if spec[0] == "vendor_extension"), None)
    out = []
    for key, item in value.items():
        if key.startswith("x-") and extension is not None:
            out.append(encode_field(extension, encode_field(1, key.encode()) +
                                    encode_field(2, _message(item, PREFIX + "Any"))))
        else:
            out.append(encode_field(number, encode_field(1, key.encode()) +
                                    encode_field(2, _message(item, value_type))))
    return b"".join(out)


def _field(number: int, value: Any, type_name: str) -> bytes:
    if type_name.startswith(PREFIX):
        return encode_field(number, _message(value, type_name))
    if type_name == "string":
        return encode_field(number, str(value).encode())
    if type_name == "bool":
        return encode_field(number, int(bool(value)))
    if type_name == "double":
        return encode_double(number, float(value))
    return encode_field(number, int(value))
