"""kube-proxy's iptables layout, rendered: the chains kube-proxy names, every rule
commented with its Service port, the statistic spread that makes each endpoint
equally likely (or as its weight says), affinity checked before the spread,
masquerade where the nftables table masquerades, and rejects in filter."""

from __future__ import annotations

import re

from podnet.proxy.endpoints import service_ports
from podnet.proxy.iptables import build_iptables, ext_chain, svc_chain
from tests.unit.test_proxy_ruleset import PODS, POD_NETWORK, pod, service, views


def rules(text: str, chain: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"-A {chain} ")]


def probabilities(lines: list[str]) -> list[float]:
    return [float(found.group(1)) for line in lines if (found := re.search(r"--probability (\S+)", line))]


def test_a_cluster_ip_spreads_over_its_endpoints_equally() -> None:
    view = views([service()], PODS, "n1")[0]
    text = build_iptables([view], POD_NETWORK).restore_text()
    chain = svc_chain(view)
    assert re.match(r"^KUBE-SVC-[A-Z2-7]{16}$", chain)
    assert rules(text, "KUBE-SERVICES")[0] == (f'-A KUBE-SERVICES -m comment --comment "default/web:80 cluster IP" '
                                              f"-d 10.96.0.2/32 -p tcp -m tcp --dport 80 -j {chain}")
    picks = rules(text, chain)
    assert "! -s 10.244.0.0/16" in picks[0] and picks[0].endswith("-j KUBE-MARK-MASQ")  # from outside: masqueraded
    spread = probabilities(picks)
    assert len(picks) == 4 and [round(p, 4) for p in spread] == [0.3333, 0.5]  # 1/3, then 1/2 of the rest, then all
    seps = [line.split("-j ")[-1] for line in picks[1:]]
    for sep in seps:
        (hairpin, dnat) = rules(text, sep)
        assert "-j KUBE-MARK-MASQ" in hairpin and "-j DNAT --to-destination 10.244." in dnat
    assert rules(text, "KUBE-SERVICES")[-1].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")


def test_weights_become_probabilities() -> None:
    heavy = pod("a", "10.244.0.2", "n1", annotations={"podnet.dev/weight": "3"})
    view = views([service()], [heavy, PODS[1]], "n1")[0]
    text = build_iptables([view], POD_NETWORK).restore_text()
    assert [round(p, 4) for p in probabilities(rules(text, svc_chain(view)))] == [0.75]


def test_affinity_is_checked_before_the_spread() -> None:
    view = views([service(sessionAffinity="ClientIP")], PODS, "n1")[0]
    picks = rules(build_iptables([view], POD_NETWORK).restore_text(), svc_chain(view))
    kinds = ["recent" if "--rcheck" in line else "statistic" if "--probability" in line else "last" for line in picks[1:]]
    assert kinds == ["recent"] * 3 + ["statistic"] * 2 + ["last"]


def test_node_ports_and_their_policies() -> None:
    cluster = views([service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])], PODS, "n1")[0]
    text = build_iptables([cluster], POD_NETWORK).restore_text()
    assert rules(text, "KUBE-NODEPORTS") == [f'-A KUBE-NODEPORTS -m comment --comment "default/web:80" -p tcp -m tcp '
                                             f"--dport 30080 -j {ext_chain(cluster)}"]
    assert rules(text, ext_chain(cluster))[0].endswith("-j KUBE-MARK-MASQ")  # Cluster hides the client
    local = views([service(type="NodePort", externalTrafficPolicy="Local",
                           ports=[{"port": 80, "nodePort": 30080}])], PODS, "n9")[0]  # no endpoint on n9
    text = build_iptables([local], POD_NETWORK).restore_text()
    assert not rules(text, "KUBE-NODEPORTS")
    assert any("--dport 30080 -j DROP" in line for line in rules(text, "KUBE-EXTERNAL-SERVICES"))


def test_a_service_without_endpoints_is_rejected_in_filter() -> None:
    view = views([service()], [], "n1")[0]
    text = build_iptables([view], POD_NETWORK).restore_text()
    assert rules(text, "KUBE-SERVICES")[0].startswith('-A KUBE-SERVICES -m comment --comment "default/web:80 has no '
                                                      'endpoints" -d 10.96.0.2/32')
    assert text.index("-j REJECT") < text.index("*nat")


class Writer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def restore(self, text: str) -> None:
        self.calls.append(("restore", text))

    def ensure_jumps(self, jumps) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(("jumps", len(list(jumps))))

    def delete_chains(self, table: str, chains) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(("delete", sorted(chains)))


def test_the_iptables_proxier_restores_then_jumps_and_deletes_what_went() -> None:
    from podnet.store.snapshot import Snapshot
    from podnet.controller.endpointslices import desired
    from podnet.proxy.iptables import IptablesProxier
    from tests.fakes import FakeNodeKernel

    writer = Writer()
    proxier = IptablesProxier(FakeNodeKernel(), writer, "n1", POD_NETWORK)
    services = [service(), service(name="db", cluster_ip="10.96.0.3")]
    proxier.sync(Snapshot(1, [], PODS, services, desired(services, PODS)))
    assert [kind for kind, _ in writer.calls] == ["restore", "jumps"]  # the chains first: jumps need them
    proxier.sync(Snapshot(2, [], PODS, services, desired(services, PODS)))
    assert len(writer.calls) == 2  # nothing changed: nothing written
    proxier.sync(Snapshot(3, [], PODS, services[:1], desired(services[:1], PODS)))
    kind, gone = writer.calls[-1]
    assert kind == "delete" and gone and all(chain.startswith(("KUBE-SVC-", "KUBE-SEP-")) for chain in gone)


def test_a_change_restores_only_the_chains_it_touched() -> None:
    """kube-proxy's minimal sync: one endpoint gone rewrites its service's chain, not
    every service's; a resync period later every chain is restored again."""
    from podnet.store.snapshot import Snapshot
    from podnet.controller.endpointslices import desired
    from podnet.proxy.iptables import IptablesProxier
    from tests.fakes import FakeNodeKernel

    writer = Writer()
    proxier = IptablesProxier(FakeNodeKernel(), writer, "n1", POD_NETWORK)
    web, db = service(), service(name="db", cluster_ip="10.96.0.3", selector={"app": "db"})
    dbs = [pod(f"d{i}", f"10.244.{i}.9", f"n{i + 1}", app="db") for i in range(3)]
    everything = [*PODS, *dbs]
    proxier.sync(Snapshot(1, [], everything, [web, db], desired([web, db], everything)))
    fewer = [*PODS[:2], *dbs]
    assert proxier.sync_services([web, db], desired([web, db], fewer)) == "chains"
    (_, text), (deleted, gone) = writer.calls[-2:]
    assert isinstance(text, str) and isinstance(gone, list)
    chain = svc_chain(views([web], fewer, "n1")[0])
    declared = [line for line in text.splitlines() if line.startswith(":")]
    assert declared == [f":{chain} - [0:0]"]  # db's chains, and every other, untouched
    assert len([r for r in rules(text, chain) if "-j KUBE-SEP-" in r]) == 2  # the two endpoints left
    assert deleted == "delete" and len(gone) == 1  # the endpoint's own KUBE-SEP chain
    proxier.resync_seconds = 0
    assert proxier.sync_services([web, db], desired([web, db], fewer)) == "table"
    assert ":KUBE-SERVICES - [0:0]" in str(writer.calls[-2][1])


def test_load_balancer_source_ranges_mark_the_others_for_the_firewall() -> None:
    view = views([service(type="LoadBalancer", loadBalancerSourceRanges=["172.18.0.0/24"],
                          ports=[{"port": 80, "nodePort": 30080}])], PODS, "n1")[0]
    view = type(view)(**{**view.__dict__, "load_balancer_ips": ("203.0.113.60",)})
    text = build_iptables([view], POD_NETWORK).restore_text()
    (entry,) = [line for line in rules(text, "KUBE-SERVICES") if "203.0.113.60" in line]
    firewall = entry.split("-j ")[-1]
    assert firewall.startswith("KUBE-FW-")
    assert [line.split("-j ")[-1] for line in rules(text, firewall)] == [ext_chain(view), "KUBE-MARK-DROP"]
    assert rules(text, "KUBE-FIREWALL") == ['-A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping '
                                            'marked packets" -m mark --mark 0x8000/0x8000 -j DROP']


# Dual-stack: ip6tables gets the same layout from the IPv6 views.

def test_ipv6_views_become_ip6tables_rules_of_the_same_layout() -> None:
    from podnet.model.families import IPV4, IPV6
    from tests.unit.test_proxy_ruleset import DUAL_PODS, POD_NETWORKS, dual_service, family_slices

    services = [dual_service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}]),
                dual_service("empty", ("10.96.0.4", "fd00:10:96::4"), selector={"app": "none"})]
    both = service_ports(services, family_slices(services, DUAL_PODS), "n1")
    v6 = build_iptables(both, POD_NETWORKS, IPV6).restore_text()
    v4 = build_iptables(both, POD_NETWORKS, IPV4).restore_text()
    assert v4 == build_iptables([v for v in both if v.family == IPV4], "10.244.0.0/16").restore_text()
    assert "fd00" not in v4 and "10.96." not in v6 and "10.244." not in v6
    (web,) = [v for v in both if v.family == IPV6 and v.name == "default/web:80"]
    nat6, filter6 = v6[v6.index("*nat"):], v6[:v6.index("*nat")]
    assert rules(nat6, "KUBE-SERVICES")[0].endswith(f"-d fd00:10:96::2/128 -p tcp -m tcp --dport 80 -j {svc_chain(web)}")
    assert "! -s fd00:10:244::/56" in rules(v6, svc_chain(web))[0]
    seps = [line.split("-j ")[-1] for line in rules(v6, svc_chain(web))[1:]]
    assert len(seps) == 3
    for sep in seps:
        hairpin, dnat = rules(v6, sep)
        assert "-s fd00:10:244:" in hairpin and "/128 -j KUBE-MARK-MASQ" in hairpin
        assert "-j DNAT --to-destination [fd00:10:244:" in dnat and dnat.endswith("]:80")
    assert any(line.endswith("-d fd00:10:96::4/128 -p tcp -m tcp --dport 80 -j REJECT --reject-with "
                             "icmp6-port-unreachable") for line in rules(filter6, "KUBE-SERVICES"))
    assert rules(nat6, "KUBE-SERVICES")[-1].endswith("! -d ::1/128 -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    assert rules(v6, "KUBE-NODEPORTS")[0].endswith(f"--dport 30080 -j {ext_chain(web)}")


class FamilyWriter(Writer):
    """A writer per family, each recording what it was asked."""

    def __init__(self, family: str = "IPv4", others: dict[str, FamilyWriter] | None = None) -> None:
        super().__init__()
        self.family = family
        self.others = others if others is not None else {family: self}

    def for_family(self, family: str) -> FamilyWriter:
        return self.others.setdefault(family, FamilyWriter(family, self.others))


def test_the_iptables_proxier_restores_each_family_on_its_own() -> None:
    from podnet.proxy.iptables import IptablesProxier
    from tests.fakes import FakeNodeKernel
    from tests.unit.test_proxy_ruleset import DUAL_PODS, POD_NETWORKS, dual_pod, dual_service, family_slices

    writer = FamilyWriter()
    proxier = IptablesProxier(FakeNodeKernel(), writer, "n1", POD_NETWORKS)
    services = [dual_service(), dual_service("db", ("10.96.0.3",), selector={"app": "db"})]
    assert proxier.sync_services(services, family_slices(services, DUAL_PODS)) == "table"
    v4, v6 = writer.others["IPv4"], writer.others["IPv6"]
    assert [kind for kind, _ in v4.calls] == [kind for kind, _ in v6.calls] == ["restore", "jumps"]
    assert "10.96.0.3" in str(v4.calls[0][1]) and "fd00:10:96::2/128" in str(v6.calls[0][1])
    moved = [*DUAL_PODS[:2], dual_pod("c", "10.244.2.2", "fd00:10:244:2::99", "n3")]  # c's IPv6 address only
    assert proxier.sync_services(services, family_slices(services, moved)) == "chains"
    assert len(v4.calls) == 2  # IPv4's tables did not change: not restored
    (_, text), (deleted, gone) = v6.calls[-2:]
    assert "fd00:10:244:2::99" in str(text) and deleted == "delete" and len(gone) == 1  # the old endpoint's chain
