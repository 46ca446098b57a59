"""The nftables the CNI plugins render: one map element per container."""

from __future__ import annotations

from podnet.cni.plugins.nat import masq_chain, render_add_masquerade, render_add_mac_guard, render_remove_masquerade
from podnet.cni.plugins.portmap import PortMapping, _key_only, render_elements


def test_masquerade_keeps_subnet_and_multicast_traffic_alone() -> None:
    script = render_add_masquerade("podnet", ["10.244.1.5/24"])
    chain = masq_chain("podnet")
    assert f"add rule inet podnet-cni {chain} ip daddr 10.244.1.0/24 return" in script
    assert f"add rule inet podnet-cni {chain} ip daddr 224.0.0.0/4 return" in script
    assert f"add element inet podnet-cni masq4 {{ 10.244.1.5 : jump {chain} }}" in script
    removal = render_remove_masquerade("podnet", ["10.244.1.5/32"])
    assert "delete element inet podnet-cni masq4 { 10.244.1.5 }" in removal


def test_chain_names_survive_any_network_name() -> None:
    assert masq_chain("my.net-1").startswith("masq_my_net_1_")
    assert masq_chain("a.b") != masq_chain("a_b")


def test_mac_guard() -> None:
    assert 'add element bridge podnet-macspoof allowed { "veth1234" . 02:00:00:00:00:01 }' in render_add_mac_guard(
        "veth1234", "02:00:00:00:00:01")


def test_portmap_elements() -> None:
    mappings = (PortMapping(8080, 80, "tcp", None), PortMapping(5353, 53, "udp", "192.168.1.10"))
    elements = render_elements(mappings, ["10.244.1.5"], snat=True, masq_all=True)
    assert "any4 { tcp . 8080 : 10.244.1.5 . 80 }" in elements
    assert "host4 { 192.168.1.10 . udp . 5353 : 10.244.1.5 . 53 }" in elements
    assert "hairpin4 { 10.244.1.5 . 10.244.1.5 }" in elements
    assert "masqall4 { 10.244.1.5 . tcp . 80 }" in elements
    assert _key_only("any4 { tcp . 8080 : 10.244.1.5 . 80 }") == "any4 { tcp . 8080 }"
    assert render_elements(mappings, ["fd00::5"], snat=False, masq_all=False) == ["any6 { tcp . 8080 : fd00::5 . 80 }"]
