"""Which printer makes each kind's Table: one line per kind, as kube-apiserver
registers a TableHandler per type; any other kind gets NAME and AGE."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from podnet.apiserver.tables.apps import DEPLOYMENT, REPLICA_SET
from podnet.apiserver.tables.core import CONFIG_MAP, EVENT, LEASE, NAMESPACE, NODE, SECRET, SERVICE_ACCOUNT
from podnet.apiserver.tables.pods import POD
from podnet.apiserver.tables.policy import CLUSTER_NETWORK_POLICY, NETWORK_POLICY
from podnet.apiserver.tables.services import ENDPOINT_SLICE, ENDPOINTS, SERVICE
from podnet.apiserver.tables.table import DEFAULT, Printer, TableOptions, is_list, make_table

PRINTERS: dict[str, Printer] = {
    "Namespace": NAMESPACE,
    "Node": NODE,
    "Pod": POD,
    "Service": SERVICE,
    "Endpoints": ENDPOINTS,
    "EndpointSlice": ENDPOINT_SLICE,
    "Deployment": DEPLOYMENT,
    "ReplicaSet": REPLICA_SET,
    "NetworkPolicy": NETWORK_POLICY,
    "ClusterNetworkPolicy": CLUSTER_NETWORK_POLICY,
    "Event": EVENT,  # core/v1 and events.k8s.io/v1
    "Lease": LEASE,
    "ConfigMap": CONFIG_MAP,
    "Secret": SECRET,
    "ServiceAccount": SERVICE_ACCOUNT,
}


def printer_for(kind: str) -> Printer:
    return PRINTERS.get(kind, DEFAULT)


def to_table(value: Mapping[str, Any], now: datetime | float, options: TableOptions = TableOptions()) -> dict[str, Any]:
    """The Table of one object or of a List, with its kind's columns."""
    kind = str(value.get("kind", ""))
    return make_table(printer_for(kind.removesuffix("List") if is_list(value) else kind), value, now, options)


def default_table(value: Mapping[str, Any], now: datetime | float,
                  options: TableOptions = TableOptions()) -> dict[str, Any]:
    """NAME and AGE only, whatever the kind."""
    return make_table(DEFAULT, value, now, options)
