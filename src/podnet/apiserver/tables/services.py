"""Rows of Services and of their endpoints: a Service's type, addresses and
ports (`80:30080/TCP`), EXTERNAL-IP as kubectl shows it (`<none>`, `<pending>`
until a load balancer has an ingress), and the first three endpoints of an
Endpoints or EndpointSlice, then how many more."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from podnet.apiserver.tables.age import Clock
from podnet.apiserver.tables.cells import NONE, format_labels, list_with_more
from podnet.apiserver.tables.table import AGE, NAME, Cells, Column, Printer, name_and_age
from podnet.model.families import host_port


def external_ip(service: Mapping[str, Any]) -> str:
    spec = service.get("spec") or {}
    kind, external = spec.get("type") or "ClusterIP", spec.get("externalIPs") or []
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or NONE
    if kind == "LoadBalancer":
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        balancers = sorted({point.get("ip") or point.get("hostname") for point in ingress} - {None, ""})
        return ",".join(balancers + external) or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def service_ports(spec: Mapping[str, Any]) -> str:
    """`53/UDP,80:30080/TCP`; `<none>` without ports."""
    pieces = []
    for port in spec.get("ports") or []:
        node_port = f":{port['nodePort']}" if port.get("nodePort") else ""
        pieces.append(f"{port.get('port', 0)}{node_port}/{port.get('protocol') or 'TCP'}")
    return ",".join(pieces) or NONE


def _service(service: Mapping[str, Any], clock: Clock) -> Cells:
    name, age = name_and_age(service, clock)
    spec = service.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
    return [name, spec.get("type") or "ClusterIP", cluster_ips[0] or NONE, external_ip(service), service_ports(spec),
            age, format_labels(spec.get("selector"))]


SERVICE = Printer((
    NAME,
    Column("Type", "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are "
                   "ExternalName, ClusterIP, NodePort, and LoadBalancer."),
    Column("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned randomly."),
    Column("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept "
                          "traffic for this service.  These IPs are not managed by Kubernetes.  The user is "
                          "responsible for ensuring that traffic arrives at a node with this IP.  A common example "
                          "is external load-balancers that are not part of the Kubernetes system."),
    Column("Port(s)", "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/"
                      "concepts/services-networking/service/#virtual-ips-and-service-proxies"),
    AGE,
    Column("Selector", "Route service traffic to pods with label keys and values matching this selector. If empty or "
                       "not present, the service is assumed to have an external process managing its endpoints, "
                       "which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and "
                       "LoadBalancer. Ignored if type is ExternalName. More info: "
                       "https://kubernetes.io/docs/concepts/services-networking/service/", priority=1),
), _service)


def _endpoint_addresses(subsets: list[Mapping[str, Any]]) -> Iterator[str]:
    """Each ready address with each port of its subset; bare addresses where there are no ports."""
    for subset in subsets:
        ips = [address.get("ip", "") for address in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        if not ports:
            yield from ips
        for port in ports:
            yield from (host_port(ip, port.get("port", 0)) for ip in ips)


def _endpoints(obj: Mapping[str, Any], clock: Clock) -> Cells:
    name, age = name_and_age(obj, clock)
    subsets = obj.get("subsets") or []
    return [name, list_with_more(_endpoint_addresses(subsets), "") if subsets else NONE, age]


ENDPOINTS = Printer((
    NAME,
    Column("Endpoints", "The set of all endpoints is the union of all subsets."),
    AGE,
), _endpoints)


def _slice_port(port: Mapping[str, Any]) -> str:
    if port.get("port") is not None:
        return str(port["port"])
    return port.get("name") or "*"


def _endpoint_slice(obj: Mapping[str, Any], clock: Clock) -> Cells:
    name, age = name_and_age(obj, clock)
    addresses = (address for endpoint in obj.get("endpoints") or [] for address in endpoint.get("addresses") or [])
    return [name, obj.get("addressType", ""), list_with_more(map(_slice_port, obj.get("ports") or []), "<unset>"),
            list_with_more(addresses, "<unset>"), age]


ENDPOINT_SLICE = Printer((
    NAME,
    Column("AddressType", "addressType specifies the type of address carried by this EndpointSlice. All addresses "
                          "in this slice must be the same type."),
    Column("Ports", "ports specifies the list of network ports exposed by each endpoint in this slice."),
    Column("Endpoints", "endpoints is a list of unique endpoints in this slice."),
    AGE,
), _endpoint_slice)
