"""The cases the reference plugins are tested for, run against the reference
bridge + host-local and against podnet's, where their behaviour should match;
those about addresses on IPv4, IPv6 and dual-stack networks alike."""

from __future__ import annotations


from tests.cni.conftest import Plugins
from tests.helpers import in_netns, within


def strip_names(result: dict) -> dict:  # type: ignore[type-arg]
    """What must match between implementations: everything but generated names and MACs."""
    shape = {k: v for k, v in result.items() if k != "interfaces"}
    shape["interfaces"] = [{k: (v if k in ("sandbox",) else type(v).__name__) for k, v in i.items()}
                           for i in result["interfaces"]]
    return shape


def container_addresses(container: str) -> str:
    return in_netns(container, "ip", "-o", "addr", "show").stdout


def eventually(check, timeout: float = 2.0) -> None:  # type: ignore[no-untyped-def]
    assert within(timeout, check, 0.02), "state did not converge"


def test_add_check_del(stacked: Plugins) -> None:
    plugins, stack = stacked, stacked.stack
    container = plugins.container()
    result = plugins.add(container, "c1")
    assert strip_names(result) == {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "str", "mac": "str"}, {"name": "str", "mac": "str"},
                       {"name": "str", "mac": "str", "sandbox": f"/run/netns/{container}"}],
        "ips": [{"interface": 2, "address": address, "gateway": gateway}
                for address, gateway in zip(stack.addresses(2), stack.gateways)],
        "routes": [{"dst": dst, "gw": gateway} for dst, gateway in zip(stack.defaults, stack.gateways)],
        "dns": {},
    }
    assert result["interfaces"][2]["name"] == "eth0"
    # the kernel agrees with the result
    for address, gateway, bridge_address in zip(stack.addresses(2), stack.gateways, stack.addresses(1)):
        family = "-6" if ":" in address else "-4"
        assert address in container_addresses(container)
        assert f"default via {gateway} dev eth0" in in_netns(container, "ip", family, "route").stdout
        assert bridge_address in in_netns(plugins.host, "ip", "-o", "addr", "show", "cnitest0").stdout
        # the reference leaves an IPv6 gateway to DAD on the bridge, so it answers a second or two later
        eventually(lambda: "1 received" in in_netns(container, "ping", "-c1", "-W1", gateway, check=False).stdout, 5)
    host_side = in_netns(plugins.host, "ip", "-o", "link", "show", "master", "cnitest0").stdout
    assert result["interfaces"][1]["name"] in host_side
    forwarding = {"-4": "net.ipv4.ip_forward", "-6": "net.ipv6.conf.all.forwarding"}
    for family in {"-6" if ":" in gateway else "-4" for gateway in stack.gateways}:
        assert in_netns(plugins.host, "sysctl", "-n", forwarding[family]).stdout.strip() == "1"
    if any(":" in gateway for gateway in stack.gateways):  # neither waits for DAD in the container
        assert in_netns(container, "sysctl", "-n", "net.ipv6.conf.eth0.accept_dad").stdout.strip() == "0"
    assert plugins.leases() == {ip: "c1\r\neth0" for ip in stack.ips(2)}

    check = {**plugins.netconf(), "prevResult": result}
    assert plugins.call("CHECK", check, container_id="c1", netns_name=container)[0] == 0

    code, out = plugins.call("DEL", check, container_id="c1", netns_name=container)
    assert (code, out) == (0, None)
    assert plugins.leases() == {}
    eventually(lambda: "eth0" not in in_netns(container, "ip", "-o", "link").stdout)
    eventually(lambda: result["interfaces"][1]["name"] not in in_netns(plugins.host, "ip", "-o", "link").stdout)


def test_a_new_pod_answers_its_neighbours_at_once(stacked: Plugins) -> None:
    """Duplicate Address Detection is off in the container for both: a pod's
    IPv6 address is usable the moment ADD answers, not a second or two later."""
    first, second = stacked.container(), stacked.container()
    stacked.add(first, "first")
    stacked.add(second, "second")
    for peer in stacked.stack.ips(3):
        assert "1 received" in in_netns(first, "ping", "-c1", "-W1", peer, check=False).stdout, peer


def test_del_twice_and_del_without_netns(plugins: Plugins) -> None:
    container = plugins.container()
    plugins.add(container, "twice")
    for _ in range(2):
        assert plugins.call("DEL", plugins.netconf(), container_id="twice", netns_name=container)[0] == 0
    plugins.add(container, "nonetns", ifname="eth1")
    assert plugins.call("DEL", plugins.netconf(), container_id="nonetns", netns_name=None, ifname="eth1")[0] == 0
    assert plugins.leases() == {}


def test_del_after_the_netns_is_gone(stacked: Plugins) -> None:
    from podnet.kernel import netns

    container = stacked.container()
    stacked.add(container, "gone")
    netns.delete(container)
    assert stacked.call("DEL", stacked.netconf(), container_id="gone", netns_name=container)[0] == 0
    assert stacked.leases() == {}


def test_second_add_of_the_same_attachment_fails(plugins: Plugins) -> None:
    container = plugins.container()
    plugins.add(container, "dup")
    code, out = plugins.call("ADD", plugins.netconf(), container_id="dup", netns_name=container)
    assert code != 0 and out and out["code"] > 0
    assert list(plugins.leases().values()) == ["dup\r\neth0"]


def test_allocation_is_round_robin(stacked: Plugins) -> None:
    first, second = stacked.container(), stacked.container()
    assert [ip["address"] for ip in stacked.add(first, "a")["ips"]] == stacked.stack.addresses(2)
    assert stacked.call("DEL", stacked.netconf(), container_id="a", netns_name=first)[0] == 0
    # .2 is free again, but host-local moves on from the last address it gave, in each range set
    assert [ip["address"] for ip in stacked.add(second, "b")["ips"]] == stacked.stack.addresses(3)


def test_requested_ip(plugins: Plugins) -> None:
    container, other = plugins.container(), plugins.container()
    args = "IgnoreUnknown=1;IP=10.123.0.77"
    assert plugins.add(container, "want", args=args)["ips"][0]["address"] == "10.123.0.77/24"
    code, out = plugins.call("ADD", plugins.netconf(), container_id="again", netns_name=other, args=args)
    assert code != 0 and out and "10.123.0.77" in out["msg"]


def test_requested_ips_one_per_range_set(stacked: Plugins) -> None:
    """runtimeConfig.ips (the "ips" capability) names one address per family."""
    container, other = stacked.container(), stacked.container()
    wanted = stacked.stack.addresses(0x77)
    config = stacked.netconf(runtimeConfig={"ips": wanted})
    assert [ip["address"] for ip in stacked.add(container, "want", config=config)["ips"]] == wanted
    code, out = stacked.call("ADD", config, container_id="again", netns_name=other)
    assert code != 0 and out and stacked.stack.ips(0x77)[0] in out["msg"]


def test_unknown_cni_args_need_ignore_unknown(plugins: Plugins) -> None:
    container = plugins.container()
    code, out = plugins.call("ADD", plugins.netconf(), container_id="args", netns_name=container, args="K8S_POD_NAME=x")
    assert code != 0 and out and "K8S_POD_NAME" in out["msg"] + out.get("details", "")
    assert plugins.add(container, "args", args="IgnoreUnknown=1;K8S_POD_NAME=x")["ips"]


def test_old_spec_versions_tag_ip_versions(stacked: Plugins) -> None:
    container = stacked.container()
    result = stacked.add(container, "old", config=stacked.netconf("0.3.1"))
    assert result["cniVersion"] == "0.3.1"
    assert result["ips"] == [{"version": "6" if ":" in address else "4", "interface": 2, "address": address,
                              "gateway": gateway}
                             for address, gateway in zip(stacked.stack.addresses(2), stacked.stack.gateways)]


def test_bad_input_codes(plugins: Plugins) -> None:
    container = plugins.container()
    cases = [
        (b"{not json", {}, 6),
        (plugins.netconf(), {"CNI_CONTAINERID": "a/b"}, 4),
        (plugins.netconf(), {"CNI_IFNAME": "a-very-long-interface-name"}, 4),
        (plugins.netconf(), {"CNI_IFNAME": "eth:0"}, 4),
        (plugins.netconf(cni_version="9.9.9"), {}, 1),
    ]
    for config, env, expected in cases:
        code, out = plugins.call("ADD", config, container_id="bad", netns_name=container, env=env)
        assert code != 0 and out and out["code"] == expected, (env, out)
    assert plugins.leases() == {}


def test_version(plugins: Plugins) -> None:
    code, out = plugins.call("VERSION", {"cniVersion": "1.0.0"})
    assert code == 0 and out
    assert {"0.3.0", "0.3.1", "0.4.0", "1.0.0"} <= set(out["supportedVersions"])
