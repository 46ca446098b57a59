"""Which flows a person asked for: hubble's filters (pod, namespace, service,
verdict, protocol, port, address, age), all of which must hold.

`podnet observe`, `podnet policy drops` and the web view's flow stream filter
alike, so their flags and query parameters mean the same. An address filter
takes either family, as an address or a CIDR, however it is written.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from podnet.errors import PodnetError
from podnet.observe.flows import Flow, endpoint_address_of


class FilterError(PodnetError):
    """A filter that cannot mean anything (an address that is none)."""


def _pod_matches(wanted: str, pod: str, namespace: str) -> bool:
    """`name` in the default (or given) namespace, or `ns/name`; a trailing name prefix matches too."""
    key = wanted if "/" in wanted else f"{namespace}/{wanted}"
    return bool(pod) and (pod == key or pod.startswith(key))


def flow_filter(from_pod: str | None, to_pod: str | None, pod: str | None, namespace: str | None,
                from_namespace: str | None, to_namespace: str | None, service: str | None,
                verdicts: tuple[str, ...], protocol: str | None, port: int | None, ip: str | None,
                since: float | None) -> Callable[[Flow], bool]:
    """One test for every filter given (as hubble's: all of them must hold)."""
    default = namespace or "default"
    tests: list[Callable[[Flow], bool]] = []
    if from_pod:
        tests.append(lambda f: _pod_matches(from_pod, f.source_pod, default))
    if to_pod:
        tests.append(lambda f: _pod_matches(to_pod, f.endpoint_pod or f.destination_pod, default))
    if pod:
        tests.append(lambda f: _pod_matches(pod, f.source_pod, default)
                     or _pod_matches(pod, f.endpoint_pod or f.destination_pod, default))
    if namespace:
        tests.append(lambda f: namespace in (f.source_namespace, f.destination_namespace))
    if from_namespace:
        tests.append(lambda f: f.source_namespace == from_namespace)
    if to_namespace:
        tests.append(lambda f: f.destination_namespace == to_namespace)
    if service:
        key = service if "/" in service else f"{default}/{service}"
        tests.append(lambda f: f.service.split(":")[0] == key)
    if verdicts:
        wanted = {v.upper() for v in verdicts}
        tests.append(lambda f: f.verdict in wanted)
    if protocol:
        tests.append(lambda f: f.protocol.upper() == protocol.upper())  # ICMPv6 is written so
    if port is not None:
        tests.append(lambda f: port in (f.destination_port, f.source_port)
                     or f.endpoint.endswith(f":{port}"))
    if ip:
        tests.append(_address_test(ip))
    if since is not None:
        tests.append(lambda f: f.time >= since)
    return lambda f: all(test(f) for test in tests)


def _address_test(ip: str) -> Callable[[Flow], bool]:
    """A flow whose source, destination, endpoint or masquerade address is `ip`
    (an address, or within it as a CIDR)."""
    try:
        network = ipaddress.ip_network(ip, strict=False)
    except ValueError:
        raise FilterError(f"--ip {ip!r}: not an IP address or CIDR (10.244.1.5, fd00:10:244::/56, ...)") from None

    def within(address: str) -> bool:
        try:
            return ipaddress.ip_address(address) in network
        except ValueError:  # "" where a flow has no such address
            return False

    return lambda f: any(within(a) for a in (f.source, f.destination, endpoint_address_of(f.endpoint),
                                             f.masqueraded_to))
