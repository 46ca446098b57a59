"""Reading nested manifest data with its path, so every error names the field;
and the names, label and annotation keys and label values Kubernetes accepts,
checked with its rules and told in its words."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from podnet.errors import ManifestError

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # each used whole (fullmatch: "web\n" is no name)
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
# Kubernetes's words (apimachinery's util/validation), so an error reads as the API server's would.
_NAME_RULE = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
_SUBDOMAIN_RULE = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                   "and must start and end with an alphanumeric character")
NAME_MAX, PREFIX_MAX, LABEL_VALUE_MAX = 63, 253, 63
ANNOTATIONS_MAX = 256 * 1024  # bytes of every key and value together


def type_name(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "empty"}.get(type(value), type(value).__name__)


def is_dns_label(value: str) -> bool:
    """RFC 1123 label: what Kubernetes requires of namespace and service names."""
    return len(value) <= 63 and bool(_DNS_LABEL.fullmatch(value))


def check_dns_label(value: str, field: str) -> str:
    if not is_dns_label(value):
        raise ManifestError(field, f"{value!r} is not a valid name (lower-case letters, digits and '-', at most 63)")
    return value


def check_dns_subdomain(value: str, field: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise ManifestError(field, f"{value!r} is not a valid name (lower-case letters, digits, '-' and '.')")
    return value


def qualified_name_problem(key: str) -> str | None:
    """Why a label or annotation key is not a qualified name, as Kubernetes says
    it: an optional prefix (a DNS subdomain of at most 253 characters) and '/',
    then a name of at most 63. None for a good key."""
    parts = key.split("/")
    if len(parts) > 2:
        return f"a qualified name {_NAME_RULE} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            return "prefix part must be non-empty"
        if len(prefix) > PREFIX_MAX:
            return f"prefix part must be no more than {PREFIX_MAX} characters"
        if not _DNS_SUBDOMAIN.fullmatch(prefix):
            return f"prefix part {_SUBDOMAIN_RULE}"
    name = parts[-1]
    if not name:
        return "name part must be non-empty"
    if len(name) > NAME_MAX:
        return f"name part must be no more than {NAME_MAX} characters"
    return None if _QUALIFIED_NAME.fullmatch(name) else f"name part {_NAME_RULE}"


def label_value_problem(value: str) -> str | None:
    """Why a label value is not one Kubernetes takes; None for a good value (empty is one)."""
    if len(value) > LABEL_VALUE_MAX:
        return f"must be no more than {LABEL_VALUE_MAX} characters"
    if value and not _QUALIFIED_NAME.fullmatch(value):
        return f"a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', " \
               f"and must start and end with an alphanumeric character"
    return None


def invalid(field: str, value: str, problem: str) -> ManifestError:
    """The API server's `FIELD: Invalid value: "VALUE": PROBLEM`."""
    return ManifestError(field, f"Invalid value: {json.dumps(value, ensure_ascii=False)}: {problem}")


def check_labels(labels: Mapping[str, str], field: str) -> dict[str, str]:
    """Labels, and the maps that select on them (matchLabels, a Service's
    selector, nodeSelector), as Kubernetes validates them: keys are qualified
    names, values at most 63 characters of the same alphabet, or empty."""
    for key, value in labels.items():
        problem = qualified_name_problem(key)
        if problem:
            raise invalid(field, key, problem)
        problem = label_value_problem(value)
        if problem:
            raise invalid(field, value, problem)
    return dict(labels)


def check_annotations(annotations: Mapping[str, str], field: str) -> dict[str, str]:
    """Annotation keys are qualified names (read in lower case, as Kubernetes
    reads them); values are free, within 256 KiB for the whole map."""
    size = 0
    for key, value in annotations.items():
        problem = qualified_name_problem(key.lower())
        if problem:
            raise invalid(field, key, problem)
        size += len(key.encode()) + len(value.encode())
    if size > ANNOTATIONS_MAX:
        raise ManifestError(field, f"Too long: must have at most {ANNOTATIONS_MAX} bytes")
    return dict(annotations)


class Fields:
    """A mapping from a manifest together with where it sits in the document."""

    def __init__(self, data: object, path: str = "") -> None:
        if not isinstance(data, dict):
            raise ManifestError(path or "document", f"must be a mapping, not {type_name(data)}")
        self.data: dict[str, Any] = data
        self.path = path

    def at(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def _typed(self, key: str, kind: type | tuple[type, ...], required: bool) -> Any:
        value = self.data.get(key)
        if value is None:
            if required:
                raise ManifestError(self.at(key), "is required")
            return None
        if isinstance(value, bool) and kind in (int, (int,)):
            raise ManifestError(self.at(key), f"must be a number, not {type_name(value)}")
        if not isinstance(value, kind):
            expected = type_name(kind() if isinstance(kind, type) else kind[0]())
            raise ManifestError(self.at(key), f"must be {expected}, not {type_name(value)}")
        return value

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self._typed(key, str, required)
        return default if value is None else value

    def integer(self, key: str, default: int | None = None, *, minimum: int | None = None,
                maximum: int | None = None, required: bool = False) -> int | None:
        value = self._typed(key, int, required)
        if value is None:
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ManifestError(self.at(key), f"{value} is out of range {minimum}..{maximum}")
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self._typed(key, bool, False)
        return default if value is None else value

    def mapping(self, key: str, *, required: bool = False) -> Fields | None:
        if self.data.get(key) is None:
            if required:
                raise ManifestError(self.at(key), "is required")
            return None
        return Fields(self.data[key], self.at(key))

    def items(self, key: str, *, required: bool = False) -> Iterator[tuple[str, Any]]:
        """(path, item) for each element of a list field."""
        values = self._typed(key, list, required) or []
        for i, value in enumerate(values):
            yield f"{self.at(key)}[{i}]", value

    def records(self, key: str, *, required: bool = False) -> Iterator[Fields]:
        for path, value in self.items(key, required=required):
            yield Fields(value, path)

    def strings(self, key: str) -> tuple[str, ...]:
        result = []
        for path, value in self.items(key):
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ManifestError(path, f"must be a string, not {type_name(value)}")
            result.append(str(value))
        return tuple(result)

    def labels(self, key: str) -> dict[str, str]:
        """A map of labels (or one that selects on them), checked as check_labels says."""
        return check_labels(self.string_map(key), self.at(key))

    def annotations(self, key: str) -> dict[str, str]:
        return check_annotations(self.string_map(key), self.at(key))

    def string_map(self, key: str) -> dict[str, str]:
        values = self._typed(key, dict, False) or {}
        for name, value in values.items():
            if not isinstance(name, str):
                raise ManifestError(self.at(key), f"key {name!r} must be a string, not {type_name(name)}")
            if not isinstance(value, str):
                raise ManifestError(f"{self.at(key)}.{name}", f"must be a string, not {type_name(value)}")
        return dict(values)

    def network(self, key: str, default: str | None = None) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        value = self.text(key, default)
        if value is None:
            return None
        try:
            return ipaddress.ip_network(value)
        except ValueError as err:
            raise ManifestError(self.at(key), f"{value!r} is not a network in CIDR form ({err})") from None

    def interface(self, path: str, value: object) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        try:
            return ipaddress.ip_interface(str(value))
        except ValueError:
            raise ManifestError(path, f"{value!r} is not an address with a prefix, like 192.168.1.10/24") from None

    def address(self, key: str, *, required: bool = False) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        value = self.text(key, required=required)
        if value is None:
            return None
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            raise ManifestError(self.at(key), f"{value!r} is not an IP address") from None

    def reject_unknown(self, *allowed: str) -> None:
        """Lab files are ours, so a misspelt field is an error rather than ignored."""
        for key in self.data:
            if key not in allowed:
                raise ManifestError(self.at(key), f"unknown field (expected one of: {', '.join(allowed)})")
