"""Rows of the policies: a NetworkPolicy's pod selector, and podnet's
ClusterNetworkPolicy as kube-apiserver serves a custom resource with printer
columns (its tier and priority, then AGE as a "date" column)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podnet.apiserver.tables.age import Clock
from podnet.apiserver.tables.cells import format_label_selector
from podnet.apiserver.tables.table import AGE, AGE_DESCRIPTION, NAME, Cells, Column, Printer, name_and_age


def _network_policy(obj: Mapping[str, Any], clock: Clock) -> Cells:
    name, age = name_and_age(obj, clock)
    return [name, format_label_selector((obj.get("spec") or {}).get("podSelector") or {}), age]


NETWORK_POLICY = Printer((
    NAME,
    Column("Pod-Selector", "Selects the pods to which this NetworkPolicy object applies."),
    AGE,
), _network_policy)


def _cluster_network_policy(obj: Mapping[str, Any], clock: Clock) -> Cells:
    name, age = name_and_age(obj, clock)
    spec = obj.get("spec") or {}
    return [name, spec.get("tier"), spec.get("priority"), age]


def _crd_column(name: str, path: str, kind: str) -> Column:
    return Column(name, f"Custom resource definition column (in JSONPath format): {path}", type=kind)


CLUSTER_NETWORK_POLICY = Printer((
    NAME,
    _crd_column("Tier", ".spec.tier", "string"),
    _crd_column("Priority", ".spec.priority", "integer"),
    Column("Age", AGE_DESCRIPTION, type="date"),
), _cluster_network_policy)
