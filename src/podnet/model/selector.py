"""Label selectors, the one helper: matchLabels and matchExpressions (In, NotIn,
Exists, DoesNotExist), as Kubernetes' LabelSelector.

A LabelSelector with nothing in it selects everything (a Deployment's or a
NetworkPolicy's `podSelector: {}`); a Service's plain `selector` map is the
exception Kubernetes makes, where an empty map derives no endpoints at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podnet.errors import ManifestError
from podnet.model.fields import Fields, invalid, label_value_problem, qualified_name_problem

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        inside = self.key in labels and labels[self.key] in self.values
        return inside if self.operator == "In" else not inside  # NotIn also holds without the label


@dataclass(frozen=True)
class LabelSelector:
    match_labels: tuple[tuple[str, str], ...] = ()  # sorted pairs: a selector is a hashable value
    match_expressions: tuple[Requirement, ...] = ()

    @classmethod
    def of(cls, labels: Mapping[str, str]) -> LabelSelector:
        return cls(tuple(sorted(labels.items())))

    @classmethod
    def parse(cls, fields: Fields) -> LabelSelector:
        fields.reject_unknown("matchLabels", "matchExpressions")
        expressions = []
        for item in fields.records("matchExpressions"):
            item.reject_unknown("key", "operator", "values")
            operator = item.text("operator", required=True)
            if operator not in OPERATORS:
                raise ManifestError(item.at("operator"), f"{operator!r} is not one of {', '.join(OPERATORS)}")
            values = item.strings("values")
            if operator in ("In", "NotIn") and not values:
                raise ManifestError(item.at("values"), f"must not be empty for operator {operator}")
            if operator in ("Exists", "DoesNotExist") and values:
                raise ManifestError(item.at("values"), f"must be empty for operator {operator}")
            key = item.text("key", required=True) or ""
            problem = qualified_name_problem(key)
            if problem:
                raise invalid(item.at("key"), key, problem)
            for i, value in enumerate(values):
                problem = label_value_problem(value)
                if problem:
                    raise invalid(f"{item.at('values')}[{i}]", value, problem)
            expressions.append(Requirement(key, operator or "", values))
        return cls(tuple(sorted(fields.labels("matchLabels").items())), tuple(expressions))

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels:  # no dict made: policies ask this of every pod
            if labels.get(key) != value:
                return False
        return all(r.matches(labels) for r in self.match_expressions)

    def text(self) -> str:
        """As kubectl prints one: `pod=a,tier in (db,web),!legacy`; `<none>` for the empty one."""
        words = [f"{key}={value}" for key, value in self.match_labels]
        for r in self.match_expressions:
            words.append({"Exists": r.key, "DoesNotExist": f"!{r.key}"}.get(
                r.operator, f"{r.key} {'in' if r.operator == 'In' else 'notin'} ({','.join(r.values)})"))
        return ",".join(words) or "<none>"

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.match_labels:
            out["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            out["matchExpressions"] = [{"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})}
                                       for r in self.match_expressions]
        return out


def matches_labels(wanted: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Every wanted label is there with its value."""
    return all(labels.get(key) == value for key, value in wanted.items())


def service_selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A Service's selector: equality only, and an empty one selects nothing."""
    return bool(selector) and matches_labels(selector, labels)
