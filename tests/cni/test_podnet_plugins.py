"""What podnet's plugins do beyond the reference's 1.1.1 (spec 1.1.0's GC and
STATUS, leak-free DEL, nftables masquerade and port maps), with real packets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from podnet.cni.install import c_relay_built
from podnet.kernel import netns
from tests.cni.conftest import Plugins
from tests.helpers import in_netns


def test_gc_releases_what_is_not_a_valid_attachment(ours: Plugins) -> None:
    keep, drop = ours.container(), ours.container()
    ours.add(keep, "keep")
    ours.add(drop, "drop")
    config = {**ours.netconf("1.1.0"), "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]}
    assert ours.call("GC", config) == (0, None)
    assert list(ours.leases().values()) == ["keep\r\neth0"]


def test_status_reports_an_exhausted_range(ours: Plugins) -> None:
    tiny = {"ranges": [[{"subnet": "10.124.0.0/30"}]]}  # one usable address besides the gateway
    config = ours.netconf("1.1.0", ipam=tiny)
    assert ours.call("STATUS", config) == (0, None)
    ours.add(ours.container(), "only", config=config)
    code, out = ours.call("STATUS", config)
    assert code != 0 and out and out["code"] == 50 and "10.124.0.1-10.124.0.2" in out["msg"]
    code, out = ours.call("ADD", config, container_id="more", netns_name=ours.container())
    assert code != 0 and out and out["code"] == 11 and "no IP addresses available" in out["msg"]


def test_wrong_types_and_bad_json_name_the_problem(ours: Plugins) -> None:
    container = ours.container()
    code, out = ours.call("ADD", ours.netconf(mtu="1500"), container_id="t", netns_name=container)
    assert (code, out["code"]) == (1, 7) and "mtu: must be a number, not a string" in out["details"]  # type: ignore[index]
    code, out = ours.call("ADD", ours.netconf(ipam={"ranges": "10.0.0.0/24"}), container_id="t", netns_name=container)
    assert (code, out["code"]) == (1, 7) and "ipam.ranges" in out["details"]  # type: ignore[index]
    code, out = ours.call("ADD", b'{"cniVersion": "1.0.0", "name": ', container_id="t", netns_name=container)
    assert (code, out["code"]) == (1, 6)  # type: ignore[index]
    assert ours.leases() == {}


def masq_elements(ours: Plugins) -> str:
    return in_netns(ours.host, "nft", "list", "map", "inet", "podnet-cni", "masq4", check=False).stdout


@pytest.mark.parametrize("netns_gone", [True, False], ids=["netns-gone", "with-prevResult"])
def test_ip_masq_is_removed_by_del(ours: Plugins, netns_gone: bool) -> None:
    """containernetworking/plugins#810: the reference leaves its chain behind. A
    runtime's DEL with the netns there and a prevResult names the address three
    times (lease, link, prevResult), which once made the removal fail quietly."""
    container = ours.container()
    config = ours.netconf(ipMasq=True)
    added = ours.add(container, "masq", config=config)
    ip = added["ips"][0]["address"].split("/")[0]
    assert f"{ip} : jump" in masq_elements(ours)
    if netns_gone:
        netns.delete(container)
    else:
        config = {**config, "prevResult": added}
    assert ours.call("DEL", config, container_id="masq", netns_name=container)[0] == 0
    assert f"{ip} : jump" not in masq_elements(ours)


def test_failure_half_way_through_add_gives_everything_back(ours: Plugins) -> None:
    container = ours.container()
    config = ours.netconf(ipam={"ranges": [[{"subnet": "10.125.0.0/24"}]]})
    ours.add(container, "first", config=config)
    # The bridge's address is not the gateway this network wants, and forceAddress is off.
    other = ours.netconf(ipam={"ranges": [[{"subnet": "10.125.0.0/24", "gateway": "10.125.0.254"}]]})
    second = ours.container()
    code, out = ours.call("ADD", other, container_id="second", netns_name=second)
    assert code != 0 and out and "already has an IP address" in out["msg"]
    assert list(ours.leases().values()) == ["first\r\neth0"]  # the second lease was released
    assert "eth0" not in in_netns(second, "ip", "-o", "link").stdout
    bridge = in_netns(ours.host, "ip", "-o", "-4", "addr", "show", "dev", "cnitest0").stdout
    assert "10.125.0.1/24" in bridge and "10.125.0.254" not in bridge  # the refused gateway was not left there


def test_a_gateway_address_deleted_by_hand_comes_back_with_the_next_add(ours: Plugins) -> None:
    config = ours.netconf(ipam={"ranges": [[{"subnet": "10.126.0.0/24"}]]})
    ours.add(ours.container(), "first", config=config)
    in_netns(ours.host, "ip", "addr", "del", "10.126.0.1/24", "dev", "cnitest0")
    ours.add(ours.container(), "second", config=config)
    assert "10.126.0.1/24" in in_netns(ours.host, "ip", "-o", "-4", "addr", "show", "dev", "cnitest0").stdout


def test_mac_mtu_hairpin_and_promisc(ours: Plugins) -> None:
    container = ours.container()
    config = ours.netconf(mtu=1400, hairpinMode=True, promiscMode=True,
                          runtimeConfig={"mac": "02:aa:bb:cc:dd:ee"})
    result = ours.add(container, "opts", config=config)
    link = in_netns(container, "ip", "-d", "link", "show", "eth0").stdout
    assert "02:aa:bb:cc:dd:ee" in link and "mtu 1400" in link
    host_if = result["interfaces"][1]["name"]
    assert "hairpin on" in in_netns(ours.host, "ip", "-d", "link", "show", host_if).stdout
    assert "PROMISC" in in_netns(ours.host, "ip", "link", "show", "cnitest0").stdout
    other = ours.container()
    assert ours.add(other, "args", args="MAC=02:11:22:33:44:55")["interfaces"][2]["mac"] == "02:11:22:33:44:55"


def test_vlan_is_refused_on_this_kernel(ours: Plugins) -> None:
    code, out = ours.call("ADD", ours.netconf(vlan=10), container_id="v", netns_name=ours.container())
    assert code != 0 and out and "vlan is not supported" in out["msg"]


def test_macspoofchk_drops_frames_from_another_mac(ours: Plugins) -> None:
    a, b = ours.container(), ours.container()
    config = ours.netconf(macspoofchk=True)
    ours.add(a, "spoof-a", config=config)
    peer = ours.add(b, "spoof-b", config=config)["ips"][0]["address"].split("/")[0]
    assert "1 received" in in_netns(a, "ping", "-c1", "-W2", peer).stdout
    in_netns(a, "ip", "link", "set", "eth0", "address", "02:de:ad:be:ef:01")
    in_netns(a, "ip", "neigh", "flush", "all")
    assert in_netns(a, "ping", "-c1", "-W1", peer, check=False).returncode != 0


def test_loopback_plugin(ours: Plugins) -> None:
    container = ours.container()
    in_netns(container, "ip", "link", "set", "lo", "down")
    code, out = ours.call("ADD", {"cniVersion": "1.0.0", "name": "lo", "type": "podnet-loopback"},
                          container_id="lo", netns_name=container, plugin="podnet-loopback")
    assert code == 0 and out and out["interfaces"] == [{"name": "lo", "mac": "00:00:00:00:00:00",
                                                         "sandbox": f"/run/netns/{container}"}]
    assert "1 received" in in_netns(container, "ping", "-c1", "-W1", "127.0.0.1").stdout


def test_portmap_publishes_a_container_port(ours: Plugins, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The seed's `docker run -p 8080:80`: the host's port 8080 reaches the
    container's port 80, from another machine, from the host itself, and from the
    container through the host (which, as with the reference, needs hairpinMode:
    br_netfilter sends the DNAT'd frame back out of the port it came in on)."""
    container, client = ours.container(), ours.container()
    bridge_conf = ours.netconf(hairpinMode=True)
    result = ours.add(container, "web", config=bridge_conf)
    client_result = ours.add(client, "client", config=bridge_conf)
    ip = result["ips"][0]["address"].split("/")[0]
    server = subprocess.Popen(netns.exec_argv(container, [sys.executable, "-m", "podnet.echo", "--port", "80"]))
    try:
        mapping = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
        portmap = {"cniVersion": "1.0.0", "name": "conformance", "type": "podnet-portmap", "snat": True,
                   "stateDir": str(tmp_path / "portmap"), "runtimeConfig": mapping, "prevResult": result}
        code, out = ours.call("ADD", portmap, container_id="web", netns_name=container, plugin="podnet-portmap")
        assert code == 0 and out == result, out
        in_netns(container, "sh", "-c", "for i in $(seq 50); do nc -z 127.0.0.1 80 && exit 0; sleep 0.05; done; exit 1")
        gateway = client_result["ips"][0]["gateway"]
        from_client = json.loads(in_netns(client, "curl", "-s", "-m", "3", f"http://{gateway}:8080/").stdout)
        assert from_client["pod"] and from_client["ip"] == ip
        from_host = in_netns(ours.host, "curl", "-s", "-m", "3", "http://127.0.0.1:8080/", check=False)
        assert from_host.returncode == 0, from_host.stderr
        hairpin = in_netns(container, "curl", "-s", "-m", "3", f"http://{gateway}:8080/", check=False)
        assert hairpin.returncode == 0 and json.loads(hairpin.stdout)["origin"] != ip  # masqueraded

        code, out = ours.call("ADD", {**portmap, "prevResult": client_result}, container_id="client",
                              netns_name=client, plugin="podnet-portmap")
        assert code != 0 and out and "already mapped" in out["msg"]

        assert ours.call("DEL", {k: v for k, v in portmap.items() if k not in ("prevResult", "runtimeConfig")},
                         container_id="web", netns_name=container, plugin="podnet-portmap")[0] == 0
        assert "8080" not in in_netns(ours.host, "nft", "list", "table", "inet", "podnet-portmap").stdout
        assert in_netns(client, "curl", "-s", "-m", "1", f"http://{gateway}:8080/", check=False).returncode != 0
    finally:
        server.kill()
        server.wait()


def test_portmap_without_mappings_changes_nothing(ours: Plugins, tmp_path) -> None:  # type: ignore[no-untyped-def]
    container = ours.container()
    result = ours.add(container, "plain")
    before = in_netns(ours.host, "nft", "list", "ruleset").stdout
    portmap = {"cniVersion": "1.0.0", "name": "conformance", "type": "podnet-portmap",
               "stateDir": str(tmp_path / "pm"), "prevResult": result}
    assert ours.call("ADD", portmap, container_id="plain", netns_name=container, plugin="podnet-portmap") == (0, result)
    assert in_netns(ours.host, "nft", "list", "ruleset").stdout == before


def test_parallel_adds_get_distinct_usable_addresses(ours: Plugins) -> None:
    containers = [ours.container() for _ in range(200)]

    def add(index: int) -> str:
        return ours.add(containers[index], f"p{index}")["ips"][0]["address"].split("/")[0]

    with ThreadPoolExecutor(max_workers=16) as pool:
        addresses = list(pool.map(add, range(200)))
    assert len(set(addresses)) == 200
    assert not {"10.123.0.0", "10.123.0.1", "10.123.0.255"} & set(addresses)
    assert len(ours.leases()) == 200


def test_works_without_an_agent(ours: Plugins) -> None:
    """The exec'd plugin does the work itself when nothing listens on the socket."""
    container = ours.container()
    out = ours.add(container, "alone", env={"PODNET_AGENT_SOCKET": "/nonexistent/podnet.sock"})
    assert out["ips"][0]["address"] == "10.123.0.2/24"
    code, _ = ours.call("DEL", ours.netconf(), container_id="alone", netns_name=container,
                        env={"PODNET_AGENT_SOCKET": "/nonexistent/podnet.sock"})
    assert code == 0 and "eth0" not in in_netns(container, "ip", "-o", "link").stdout


def test_the_c_relay_is_what_runs_and_says_so_when_nothing_can_answer(ours: Plugins, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The installed plugin is the C relay (an ELF file, not a script). Without an
    agent and without the Python entry beside it, it answers with the spec's error
    JSON, code 11 (try again later), echoing the config's cniVersion."""
    if not c_relay_built():
        pytest.skip("the C relay is not built (./run builds it)")
    binary = ours.plugin_dir / ours.bridge
    assert binary.read_bytes()[:4] == b"\x7fELF"
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(binary, lonely / ours.bridge)
    alone = Plugins("podnet", ours.bridge, ours.host_local, lonely, ours.host, tmp_path / "ipam")
    code, out = alone.call("ADD", ours.netconf("1.1.0"), container_id="x", netns_name=ours.container(),
                           env={"PODNET_AGENT_SOCKET": "/nonexistent/podnet.sock"})
    assert code != 0 and out is not None
    assert (out["cniVersion"], out["code"]) == ("1.1.0", 11) and "agent unreachable" in out["msg"]


def test_status_51_when_attached_containers_lost_their_bridge(ours: Plugins) -> None:
    config = ours.netconf("1.1.0", bridge="cnitest51", ipam={"ranges": [[{"subnet": "10.126.0.0/24"}]]})
    ours.add(ours.container(), "attached", config=config)
    in_netns(ours.host, "ip", "link", "del", "cnitest51")
    code, out = ours.call("STATUS", config)
    assert code != 0 and out and out["code"] == 51


def test_gc_honours_the_legacy_attachments_key(ours: Plugins) -> None:
    ours.add(ours.container(), "legacy-keep")
    ours.add(ours.container(), "legacy-drop")
    config = {**ours.netconf("1.1.0"), "cni.dev/attachments": [{"containerID": "legacy-keep", "ifname": "eth0"}]}
    assert ours.call("GC", config)[0] == 0
    assert list(ours.leases().values()) == ["legacy-keep\r\neth0"]


def test_dns_from_resolv_conf(ours: Plugins, tmp_path) -> None:  # type: ignore[no-untyped-def]
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n")
    result = ours.add(ours.container(), "dns", config=ours.netconf(ipam={"resolvConf": str(resolv)}))
    assert result["dns"] == {"nameservers": ["10.96.0.10"], "search": ["default.svc.cluster.local", "svc.cluster.local"],
                             "options": ["ndots:5"]}


def test_agent_socket_is_for_root_only(ours: Plugins) -> None:
    import os
    import stat

    socket = f"/run/podnet/agents/net-{os.stat(netns.path(ours.host)).st_ino}.sock"
    mode = os.stat(socket).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(os.stat("/run/podnet/agents").st_mode) == 0o700
