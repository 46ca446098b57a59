"""The kernel door in real namespaces: ensure-style, idempotent, never the root namespace."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from podnet.errors import KernelError
from podnet.kernel import netns, sysctl
from podnet.kernel.netlink import open_namespace
from podnet.kernel.route import Route
from tests.helpers import in_netns


def test_refuses_names_it_does_not_own() -> None:
    for name in ("default", "red", "../pn-x", "pn-/x"):
        with pytest.raises(KernelError, match="refusing"):
            netns.check_name(name)


def test_create_brings_loopback_up_and_is_idempotent(make_netns) -> None:  # type: ignore[no-untyped-def]
    name = make_netns()
    netns.create(name)
    assert "UP" in in_netns(name, "ip", "-o", "link", "show", "lo").stdout
    in_netns(name, "ping", "-c1", "-W1", "127.0.0.1")


def test_veth_bridge_and_addresses_carry_packets(make_netns) -> None:  # type: ignore[no-untyped-def]
    a, b = make_netns(), make_netns()
    with open_namespace(a) as ns:
        for _ in range(2):  # twice: ensure-style calls change nothing the second time
            ns.ensure_bridge("br0")
            ns.ensure_address("br0", "10.77.0.1/24")
            ns.ensure_veth("v-b", "eth0", b)
            ns.set_master("v-b", "br0")
            ns.set_up("v-b")
        assert ns.link_kind("br0") == "bridge"
        assert "10.77.0.1/24" in ns.addresses("br0")
    with open_namespace(b) as ns:
        ns.ensure_address("eth0", "10.77.0.2/24")
        ns.ensure_address("eth0", "10.77.0.2/24")
        ns.set_up("eth0")
    assert "1 received" in in_netns(b, "ping", "-c1", "-W2", "10.77.0.1").stdout


def test_sync_routes_adds_removes_and_leaves_others_alone(make_veth_pair) -> None:  # type: ignore[no-untyped-def]
    a, _ = make_veth_pair("eth0", "10.78.0.1/24", "10.78.0.2/24")
    with open_namespace(a) as ns:
        wanted = {Route("10.1.0.0/24", via="10.78.0.2"), Route("10.2.0.0/24", via="10.78.0.3", dev="eth0")}
        assert ns.sync_routes(wanted)[0] == wanted
        assert ns.sync_routes(wanted) == (set(), set())  # idempotent
        in_netns(a, "ip", "route", "add", "10.9.0.0/24", "via", "10.78.0.9")  # someone else's route
        in_netns(a, "ip", "route", "del", "10.1.0.0/24")  # drift
        added, removed = ns.sync_routes({Route("10.1.0.0/24", via="10.78.0.2")})
        assert added == {Route("10.1.0.0/24", via="10.78.0.2")}
        assert {r.dst for r in removed} == {"10.2.0.0/24"}
    table = in_netns(a, "ip", "route").stdout
    assert "10.1.0.0/24 via 10.78.0.2" in table and "10.9.0.0/24" in table and "10.2.0.0/24" not in table


def test_sysctl_is_per_namespace(make_netns) -> None:  # type: ignore[no-untyped-def]
    name = make_netns()
    root_before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    assert sysctl.ensure(name, "net.ipv4.ip_forward", "1") is True
    assert sysctl.ensure(name, "net.ipv4.ip_forward", "1") is False
    assert sysctl.get(name, "net.ipv4.ip_forward") == "1"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == root_before


def test_run_in_leaves_the_caller_where_it_was(make_netns) -> None:  # type: ignore[no-untyped-def]
    name = make_netns()
    own = os.readlink("/proc/thread-self/ns/net")
    inside = netns.run_in(name, lambda: os.readlink("/proc/thread-self/ns/net"))
    assert inside != own and os.readlink("/proc/thread-self/ns/net") == own


def test_processes_are_found_by_namespace_and_stopped(make_netns, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name = make_netns()
    pid = netns.spawn(name, ["sleep", "60"], log_path=tmp_path / "log")
    deadline = time.monotonic() + 5
    while pid not in netns.processes_in([name]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert netns.processes_in([name]) == [pid]
    netns.kill_processes_in([name])
    assert netns.processes_in([name]) == []
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0


def test_delete_is_safe_twice(make_netns) -> None:  # type: ignore[no-untyped-def]
    name = make_netns()
    netns.delete(name)
    netns.delete(name)
    assert not netns.exists(name)


def test_a_file_a_cut_short_create_left_is_no_live_namespace(make_netns) -> None:  # type: ignore[no-untyped-def]
    live = make_netns()
    stray = f"{live}-stray"
    netns.path(stray).touch()  # what an agent killed between making the file and mounting on it leaves
    try:
        assert netns.is_live(live)
        assert netns.exists(stray) and not netns.is_live(stray)
        netns.delete(stray)
        assert not netns.exists(stray)
    finally:
        netns.path(stray).unlink(missing_ok=True)


def test_ipv6_address_without_dad_answers_at_once(make_netns) -> None:  # type: ignore[no-untyped-def]
    """nodad: no second or two "tentative", in which the address neither answers nor is a source."""
    near, far = make_netns(), make_netns()
    with open_namespace(near) as ns:
        ns.ensure_bridge("br0")
        ns.create_veth("v0", "eth0", far, master="br0", up=True)
        ns.ensure_address("br0", "fd00:77::1/64")
        assert ns.add_address("br0", "fd00:77::1/64") is False  # there already
    with open_namespace(far) as ns:
        ns.ensure_address("eth0", "fd00:77::2/64")
        ns.set_up("eth0")
    assert "tentative" not in in_netns(near, "ip", "-6", "addr", "show", "br0", "scope", "global").stdout
    assert "1 received" in in_netns(far, "ping", "-c1", "-W1", "fd00:77::1").stdout


def test_sysctls_of_an_interface_with_a_dot_in_its_name(make_netns) -> None:  # type: ignore[no-untyped-def]
    name = make_netns()
    with open_namespace(name) as ns:
        ns.ensure_bridge("br0.5", up=False)
    ns_path = str(netns.path(name))
    keys = {"net/ipv6/conf/br0.5/accept_dad": "0", "net/ipv4/conf/br0.5/arp_notify": "1"}
    assert sysctl.ensure_all_path(ns_path, keys) == list(keys)
    assert sysctl.ensure_all_path(ns_path, keys) == []
    assert sysctl.read_path(ns_path, "net/ipv6/conf/br0.5/accept_dad") == "0"
    assert sysctl.read_path(ns_path, "net/ipv6/conf/nosuchlink/accept_dad") is None
    assert "state DOWN" in in_netns(name, "ip", "link", "show", "br0.5").stdout
