"""What `podnet node join` writes, as values: the conflist, the units, and the
store's location with its TLS files."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from podnet.api.cluster import ClusterConfig
from podnet.machine import files
from podnet.machine.files import Joining
from podnet.store.base import StoreError
from podnet.store.location import etcd_location, with_tls
from podnet.store.tls import TlsFiles

TLS = TlsFiles("/pki/ca.crt", "/pki/node.crt", "/pki/node.key")


def joining(control_plane: bool = False, tls: TlsFiles | None = TLS) -> Joining:
    return Joining(Path("/scratch"), "m1", ("192.0.2.10",), "etcd://192.0.2.1:2379,192.0.2.2:2379", tls,
                   ClusterConfig("10.244.0.0/16", "10.96.0.0/12", backend="vxlan", proxy_mode="iptables",
                                 iptables_backend="nft"),
                   ("10.244.3.0/24",), control_plane)


def test_the_conflist_hands_out_the_leased_subnet_under_the_root() -> None:
    conflist = files.conflist(joining())
    bridge, portmap = conflist["plugins"]  # type: ignore[misc]
    assert bridge["type"] == "podnet-bridge" and bridge["bridge"] == "cni0" and bridge["mtu"] == 1450  # vxlan
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24"}]]
    assert bridge["ipam"]["dataDir"] == "/scratch/var/lib/cni/networks"
    assert portmap["stateDir"].startswith("/scratch/")
    assert set(files.rendered(joining())) == {Path("/scratch/etc/cni/net.d/10-podnet.conflist"),
                                              Path("/scratch/etc/systemd/system/podnet-agent.service")}


def test_only_the_agents_unit_may_change_the_root_namespace() -> None:
    units = files.units(joining(control_plane=True))
    assert set(units) == {"podnet-agent.service", "podnet-controller.service"}
    agent_argv, agent_env = files.exec_start(units["podnet-agent.service"])
    controller_argv, controller_env = files.exec_start(units["podnet-controller.service"])
    assert agent_env == {"PODNET_ALLOW_ROOT_NETNS": "1"} and controller_env == {}
    assert agent_argv[1:4] == ["-m", "podnet", "agent"] and "--netns" not in agent_argv  # its own namespace
    for flag, value in (("--node", "m1"), ("--backend", "vxlan"), ("--proxy-mode", "iptables"),
                        ("--cluster-cidr", "10.244.0.0/16"), ("--etcd-cafile", "/pki/ca.crt"),
                        ("--etcd-keyfile", "/pki/node.key")):
        assert agent_argv[agent_argv.index(flag) + 1] == value
    assert controller_argv[controller_argv.index("--etcd-certfile") + 1] == "/pki/node.crt"


def test_exec_start_survives_spaces_in_paths() -> None:
    spaced = Joining(**{**joining().__dict__, "tls": TlsFiles("/my pki/ca.crt", "/my pki/a.crt", "/my pki/a.key")})
    argv, _ = files.exec_start(files.units(spaced)["podnet-agent.service"])
    assert "/my pki/ca.crt" in argv and shlex.join(argv) in files.units(spaced)["podnet-agent.service"]


def test_plain_http_units_carry_no_tls_flags() -> None:
    argv, _ = files.exec_start(files.units(joining(tls=None))["podnet-agent.service"])
    assert not any(a.startswith("--etcd-") for a in argv)


def test_tls_files_ride_in_the_store_location() -> None:
    location = with_tls("etcd://10.0.0.1:2379?netns=/run/netns/pn-x", TLS)
    assert location == etcd_location(["10.0.0.1:2379"], "/run/netns/pn-x", TLS)
    assert "cafile=/pki/ca.crt" in location and "keyfile=/pki/node.key" in location
    assert with_tls("/tmp/store.db", None) == "/tmp/store.db"
    with pytest.raises(StoreError, match="TLS files are for an etcd store"):
        with_tls("/tmp/store.db", TLS)


def test_missing_tls_files_are_named_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="the CA file .*nope.crt does not exist"):
        TlsFiles(str(tmp_path / "nope.crt")).check()
    with pytest.raises(StoreError, match="go together"):
        TlsFiles(str(tmp_path / "ca.crt"), certfile="x").check()


def test_a_control_plane_with_the_cas_key_serves_the_api_on_its_address_with_join_s_certificates() -> None:
    serving = Joining(**{**joining(control_plane=True).__dict__, "apiserver": True})
    units = files.units(serving)
    assert set(units) == {"podnet-agent.service", "podnet-controller.service", "podnet-apiserver.service"}
    argv, environment = files.exec_start(units["podnet-apiserver.service"])
    assert argv[1:4] == ["-m", "podnet", "apiserver"] and environment == {}  # it changes no network
    assert [argv[i + 1] for i, word in enumerate(argv) if word == "--listen"] == ["192.0.2.10:6443", "127.0.0.1:6443"]
    assert argv[argv.index("--tls-cert-file") + 1] == "/scratch/etc/podnet/pki/apiserver.crt"
    assert argv[argv.index("--client-ca-file") + 1] == argv[argv.index("--etcd-cafile") + 1] == "/pki/ca.crt"
    assert files.unit_names(True, True)[-1] == "podnet-apiserver.service"


def test_a_dual_stack_node_gets_a_range_set_per_family_and_the_agent_both_pod_networks() -> None:
    dual = Joining(Path("/scratch"), "m1", ("192.0.2.10", "2001:db8:1::10"), "etcd://192.0.2.1:2379", TLS,
                   ClusterConfig("10.244.0.0/16,fd00:10:244::/56", "10.96.0.0/12,fd00:10:96::/112",
                                 backend="host-gw", proxy_mode="nftables", iptables_backend="nft"),
                   ("10.244.3.0/24", "fd00:10:244:3::/64"), apiserver=True)
    bridge, _ = files.conflist(dual)["plugins"]  # type: ignore[misc]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24"}], [{"subnet": "fd00:10:244:3::/64"}]]
    argv = files.agent_argv(dual)
    assert argv[argv.index("--cluster-cidr") + 1] == "10.244.0.0/16,fd00:10:244::/56"
    listen = files.apiserver_argv(dual)
    assert [listen[i + 1] for i, flag in enumerate(listen) if flag == "--listen"] == [
        "192.0.2.10:6443", "[2001:db8:1::10]:6443", "127.0.0.1:6443"]
