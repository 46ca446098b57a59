"""The change tracker: after any run of changes, what it wrote leaves each family's
table exactly as a whole render of the same Services would, and a sync looks only
at the views that changed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from podnet.kernel.nftables.fake import Fake
from podnet.model.families import FAMILIES, IPV4, IPV6
from podnet.proxy import ruleset
from podnet.proxy.endpoints import ViewMemo, service_ports
from podnet.proxy.ruleset import build
from podnet.proxy.tracker import ChangeTracker
from tests.unit.test_proxy_ruleset import POD_NETWORKS, dual_pod, dual_service, family_slices

NODE_PORT = {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}


def services(count: int) -> list:  # type: ignore[type-arg]
    return [dual_service(f"s{i}", (f"10.96.0.{i + 2}", f"fd00:10:96::{i + 2:x}"), selector={"app": f"a{i % 3}"})
            for i in range(count)]


def pods(version: int = 0) -> list:  # type: ignore[type-arg]
    """Pods shared by several services (so a hairpin pair is made by each of them)."""
    return [dual_pod(f"p{j}", f"10.244.{j}.{2 + version}", f"fd00:10:244:{j:x}::{2 + version:x}", "n1",
                     app=f"a{j % 3}") for j in range(6)]


class Node:
    """A tracker per family writing into a Fake, as the proxier does."""

    def __init__(self) -> None:
        self.nft = Fake()
        self.memo = ViewMemo()
        self.trackers = {f: ChangeTracker(f, ruleset.pod_network_of(POD_NETWORKS, f)) for f in FAMILIES}

    def sync(self, svcs: list, pods: list, slices: list | None = None,  # type: ignore[type-arg]
             check: bool = True) -> dict[str, str]:
        views = service_ports(svcs, slices if slices is not None else family_slices(svcs, pods), "n1", memo=self.memo)
        done = {}
        for family, tracker in self.trackers.items():
            change = tracker.update(views)
            if change.whole is not None:
                self.nft.run(change.whole.transaction())
                done[family] = "table"
            elif change.elements:
                self.nft.run(change.elements)
                done[family] = "elements"
            else:
                done[family] = "none"
        if not check:
            return done
        reference = Fake()
        for family in FAMILIES:
            reference.run(build(views, POD_NETWORKS, family).transaction())
        assert self.nft.dump() == reference.dump()  # what was written is what a whole render gives
        return done


def test_a_run_of_changes_leaves_each_table_as_a_whole_render_would() -> None:
    node = Node()
    svcs, everyone = services(8), pods()
    assert node.sync(svcs, everyone) == {IPV4: "table", IPV6: "table"}
    slices = family_slices(svcs, everyone)
    assert node.sync(svcs, everyone, slices) == {IPV4: "none", IPV6: "none"}
    moved = [*everyone[:5], replace(everyone[5], pod_ips=(everyone[5].pod_ips[0], "fd00:10:244:5::99"))]
    assert node.sync(svcs, moved) == {IPV4: "none", IPV6: "elements"}  # an IPv6 address: its table only
    assert node.sync(svcs[:6], moved) == {IPV4: "elements", IPV6: "elements"}  # two services gone
    assert node.sync(svcs[:6], pods(1)) == {IPV4: "elements", IPV6: "elements"}  # every endpoint moved
    assert node.sync(svcs[:6], pods(1)[:4])["IPv4"] == "table"  # fewer endpoints: a pick chain of a new size
    node_ports = [replace(s, type="NodePort") if i == 0 else s for i, s in enumerate(svcs[:6])]
    node_ports[0] = dual_service("s0", ("10.96.0.2", "fd00:10:96::2"), selector={"app": "a0"}, **NODE_PORT)
    node.sync(node_ports, pods(1)[:4])
    sticky = dual_service("s1", ("10.96.0.3", "fd00:10:96::3"), selector={"app": "a1"}, sessionAffinity="ClientIP")
    with_sticky = [node_ports[0], sticky, *node_ports[2:]]
    assert node.sync(with_sticky, pods(1)[:4]) == {IPV4: "table", IPV6: "table"}  # chains of its own
    assert node.sync(with_sticky, pods(2)[:4]) == {IPV4: "table", IPV6: "table"}  # its endpoint chains changed
    assert node.sync([], []) == {IPV4: "table", IPV6: "table"}
    assert node.sync(svcs, everyone) == {IPV4: "table", IPV6: "table"}


def test_a_sync_renders_only_the_views_that_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    node = Node()
    svcs, everyone = services(60), pods()
    slices = family_slices(svcs, everyone)
    node.sync(svcs, everyone, slices)
    rendered = []
    original = ruleset.Contents.add_view
    monkeypatch.setattr(ruleset.Contents, "add_view", lambda self, view: (rendered.append(view.name),
                                                                          original(self, view))[1])
    one = [s for s in family_slices(svcs[7:8], pods(1)) if s.address_type == IPV6]  # s7's IPv6 slice, renewed
    renewed = [one[0] if s.service == "s7" and s.address_type == IPV6 else s for s in slices]
    assert node.sync(svcs, everyone, renewed, check=False) == {IPV4: "none", IPV6: "elements"}
    assert rendered == ["default/s7:80"] * 2  # its old IPv6 view out, the new one in; nothing of the other 119


def test_a_failed_whole_write_is_tried_again_at_the_next_sync() -> None:
    from podnet.errors import KernelError
    from podnet.proxy.proxier import Proxier
    from tests.fakes import FakeNodeKernel

    kernel = FakeNodeKernel()
    proxier = Proxier(kernel, "n1", POD_NETWORKS)
    svcs, everyone = services(3), pods()
    real_run = kernel.nft.run

    def refuse(tx):  # type: ignore[no-untyped-def]
        raise KernelError("nft: refused")

    kernel.nft.run = refuse  # type: ignore[method-assign]
    with pytest.raises(KernelError):
        proxier.sync_services(svcs, family_slices(svcs, everyone))
    kernel.nft.run = real_run  # type: ignore[method-assign]
    assert proxier.sync_services(svcs, family_slices(svcs, everyone)) == "table"
    assert set(kernel.nft.tables) == set(ruleset.TABLES.values())
