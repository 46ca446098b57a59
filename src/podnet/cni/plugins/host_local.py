"""host-local IPAM: addresses from range sets, leases on local disk, round-robin.

Behaves as the reference plugin does (same config, same files, same errors), but
finds a container's leases through an index instead of reading every lease.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from podnet.cni import result
from podnet.cni.config import config_errors, fields, runtime_or_args
from podnet.cni.errors import INVALID_CONFIG, NOT_AVAILABLE, TRY_AGAIN_LATER, CniError, invalid_config
from podnet.cni.request import CniRequest
from podnet.ipam.lease_store import DEFAULT_DATA_DIR, LeaseStore
from podnet.ipam.ranges import Address, Range, RangeError, RangeSet

TYPE = "podnet-host-local"


@dataclass(frozen=True)
class HostLocalConfig:
    range_sets: tuple[RangeSet, ...]
    routes: tuple[result.Route, ...]
    data_dir: str
    resolv_conf: str | None

    @classmethod
    def parse(cls, ipam: Any) -> HostLocalConfig:
        conf = fields(ipam, "ipam")
        with config_errors():
            range_sets = []
            if conf.has("subnet"):  # the legacy single-range form
                range_sets.append([{k: conf.data[k] for k in ("subnet", "rangeStart", "rangeEnd", "gateway") if k in conf.data}])
            for path, value in conf.items("ranges"):
                if not isinstance(value, list):
                    raise invalid_config("invalid network config", f"{path}: must be a list of ranges")
                range_sets.append(value)
            if not range_sets:
                raise invalid_config("invalid network config", "ipam: no IP ranges specified")
            parsed = []
            for i, ranges in enumerate(range_sets):
                built = []
                for j, item in enumerate(ranges):
                    r = fields(item, f"ipam.ranges[{i}][{j}]")
                    try:
                        built.append(Range.build(r.text("subnet", required=True), r.text("rangeStart"),
                                                 r.text("rangeEnd"), r.text("gateway")))
                    except RangeError as err:
                        raise invalid_config("invalid range set", f"ipam.ranges[{i}][{j}]: {err}") from None
                try:
                    parsed.append(RangeSet(tuple(built)))
                except RangeError as err:
                    raise invalid_config("invalid range set", f"ipam.ranges[{i}]: {err}") from None
            _check_disjoint(parsed)
            routes = tuple(result.Route(str(route.network("dst")), str(gw) if (gw := route.address("gw")) else None)
                           for route in conf.records("routes"))
            return cls(tuple(parsed), routes, conf.text("dataDir", DEFAULT_DATA_DIR), conf.text("resolvConf"))


def _check_disjoint(range_sets: list[RangeSet]) -> None:
    for i, first in enumerate(range_sets):
        for second in range_sets[i + 1:]:
            for a in first.ranges:
                for b in second.ranges:
                    if a.subnet.overlaps(b.subnet):
                        raise invalid_config("invalid range set", f"range sets {first} and {second} overlap")


def requested_ips(request: CniRequest) -> list[Address]:
    """IP= in CNI_ARGS, and runtimeConfig.ips / args.cni.ips ("10.1.2.3" or "10.1.2.3/24")."""
    wanted = [text for text in request.args.get("IP", "").split(",") if text]
    wanted += list(runtime_or_args(request.config, "ips") or [])
    found = []
    for text in wanted:
        try:
            found.append(ipaddress.ip_interface(str(text)).ip)
        except ValueError:
            raise CniError(INVALID_CONFIG, "invalid requested IP", str(text)) from None
    return found


def _store(request: CniRequest, config: HostLocalConfig) -> LeaseStore:
    return LeaseStore(config.data_dir, request.network)


def add(request: CniRequest, ipam: Any) -> result.Result:
    config = HostLocalConfig.parse(ipam)
    wanted = requested_ips(request)
    allocated: list[tuple[Address, Range]] = []
    store = _store(request, config)
    with store.locked():
        mine = set(store.find(request.container_id, request.ifname))
        try:
            for index, range_set in enumerate(config.range_sets):
                for address in mine:
                    if range_set.range_for(address):
                        raise CniError(INVALID_CONFIG, f"{address} has been allocated to {request.container_id}, "
                                       "duplicate allocation is not allowed")
                allocated.append(_allocate(store, request, range_set, index, wanted))
            unused = [str(a) for a in wanted if a not in {address for address, _ in allocated}]
            if unused:
                raise CniError(INVALID_CONFIG, "requested IPs were not assigned to any range", ", ".join(unused))
        except BaseException:
            for address, _ in allocated:
                store.release(address)
            raise
    ips = tuple(result.IPConfig(f"{address}/{r.subnet.prefixlen}", str(r.gateway) if r.gateway else None)
                for address, r in allocated)
    return result.Result(ips=ips, routes=config.routes, dns=_read_resolv_conf(config.resolv_conf))


def _allocate(store: LeaseStore, request: CniRequest, range_set: RangeSet, index: int,
              wanted: list[Address]) -> tuple[Address, Range]:
    for address in wanted:
        r = range_set.range_for(address)
        if r is None:
            continue
        if address == r.gateway:
            raise CniError(INVALID_CONFIG, f"requested ip {address} is subnet's gateway")
        if not store.reserve(request.container_id, request.ifname, address, index):
            raise CniError(INVALID_CONFIG, f"requested IP address {address} is not available in range set {range_set}")
        return address, r
    for address, r in range_set.iterate_after(store.last_reserved(index)):
        if store.reserve(request.container_id, request.ifname, address, index):
            return address, r
    raise CniError(TRY_AGAIN_LATER, f"no IP addresses available in range set: {range_set}",
                   "the range is exhausted; addresses come back as containers are deleted")


def delete(request: CniRequest, ipam: Any) -> list[Address]:
    """Release the container's leases; nothing to release is not an error."""
    config = HostLocalConfig.parse(ipam)
    store = _store(request, config)
    with store.locked():
        return store.release_by_id(request.container_id, request.ifname)


def leased(request: CniRequest, ipam: Any) -> list[Address]:
    config = HostLocalConfig.parse(ipam)
    store = _store(request, config)
    with store.locked():
        return store.find(request.container_id, request.ifname)


def families(ipam: Any) -> set[int]:
    """4, 6 or both (one range set per family is how a network is dual-stack),
    read from the subnets as written: a cheap look before ADD parses them."""
    if not isinstance(ipam, dict):
        return set()
    ranges = ipam.get("ranges") if isinstance(ipam.get("ranges"), list) else []
    subnets = [ipam.get("subnet")] + [item.get("subnet") for range_set in ranges if isinstance(range_set, list)
                                      for item in range_set if isinstance(item, dict)]
    return {6 if ":" in subnet else 4 for subnet in subnets if isinstance(subnet, str)}


def check(request: CniRequest, ipam: Any) -> None:
    if not leased(request, ipam):
        raise CniError(INVALID_CONFIG, f"host-local: Failed to find address added by container {request.container_id}")


def valid_attachments(config: dict[str, Any]) -> set[tuple[str, str]] | None:
    """GC's list of attachments to keep (and the legacy key a libcni bug wrote)."""
    for key in ("cni.dev/valid-attachments", "cni.dev/attachments"):
        if key in config:
            items = config[key] or []
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise CniError(INVALID_CONFIG, "invalid network config", f"{key}: must be a list of objects")
            return {(str(i.get("containerID", "")), str(i.get("ifname", ""))) for i in items}
    return None


def gc(request: CniRequest, ipam: Any) -> list[Address]:
    """Release every lease whose (container, ifname) is not a valid attachment."""
    keep = valid_attachments(request.config)
    if keep is None:
        return []
    config = HostLocalConfig.parse(ipam)
    store = _store(request, config)
    released = []
    with store.locked():
        for address, (container_id, ifname) in store.leases().items():
            if (container_id, ifname) not in keep and not (ifname == "" and any(c == container_id for c, _ in keep)):
                store.release(address)
                released.append(address)
    return released


def all_leases(request: CniRequest, ipam: Any) -> set[Address]:
    store = _store(request, HostLocalConfig.parse(ipam))
    with store.locked():
        return set(store.leases())


def status(request: CniRequest, ipam: Any) -> None:
    """Not available (50) while any range set has no free address."""
    config = HostLocalConfig.parse(ipam)
    taken = all_leases(request, ipam)
    for range_set in config.range_sets:
        free = range_set.size - sum(1 for a in taken if range_set.range_for(a))
        if free <= 0:
            raise CniError(NOT_AVAILABLE, f"no IP addresses available in range set: {range_set}",
                           "the range is exhausted; ADD will fail until addresses are released")


def _read_resolv_conf(path: str | None) -> result.DNS:
    if not path:
        return result.DNS()
    try:
        lines = open(path).read().splitlines()
    except OSError as err:
        raise CniError(INVALID_CONFIG, f"cannot read resolvConf {path}", err.strerror or "") from None
    nameservers, search, options, domain = [], [], [], ""
    for line in lines:
        parts = line.split("#", 1)[0].split()
        if len(parts) < 2:
            continue
        key, values = parts[0], parts[1:]
        if key == "nameserver":
            nameservers.append(values[0])
        elif key == "domain":
            domain = values[0]
        elif key == "search":
            search.extend(values)
        elif key == "options":
            options.extend(values)
    return result.DNS(tuple(nameservers), domain, tuple(search), tuple(options))
