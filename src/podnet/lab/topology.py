"""Bringing up a plain topology: hosts, routers, switches and the links between them.

The seeds' first half (veth pairs, a bridge, a router between subnets, NAT to the
outside) is written as topology files and built here.
"""

from __future__ import annotations

import time

from podnet.kernel import netns, sysctl
from podnet.kernel.nftables import Table, Transaction, base_chain, hooks
from podnet.kernel.nftables.nfnl import NetlinkNft
from podnet.kernel.nftables.rules import OIFNAME, Masquerade, match, rule, saddr
from podnet.kernel.netlink import open_namespace
from podnet.kernel.route import Route
from podnet.lab import names, processes
from podnet.lab.progress import Progress
from podnet.lab.topology_spec import HostSpec, LinkEnd, TopologySpec
from podnet.lab.state import LabRecord

NAT_TABLE = Table("inet", hooks.TOPOLOGY_NAT)


def home_namespace(spec: TopologySpec, member: str) -> str:
    """A switch lives in its host's namespace when it has one, else in its own."""
    switch = spec.switch(member)
    owner = (switch.host or switch.name) if switch else member
    return names.member_namespace(spec.name, owner)


def members(spec: TopologySpec) -> dict[str, str]:
    found = {f"host/{h.name}": home_namespace(spec, h.name) for h in spec.hosts}
    found.update({f"switch/{s.name}": home_namespace(spec, s.name) for s in spec.switches if not s.host})
    return found


def render_masquerade(host: HostSpec) -> Transaction | None:
    """The seeds' `iptables -t nat -A POSTROUTING -s SRC -j MASQUERADE`, as the host's NAT table."""
    if not host.masquerade:
        return None
    tx = Transaction(NAT_TABLE).replace().add(base_chain(NAT_TABLE, "postrouting"))
    for source, out in host.masquerade:
        leaving = (match(OIFNAME, f'"{out}"'),) if out else ()
        tx.add(rule("postrouting", match(saddr(source.version), str(source)), *leaving, Masquerade()))
    return tx


def build_topology(spec: TopologySpec, record: LabRecord, progress: Progress) -> None:
    record.members = members(spec)
    record.save()
    namespaces = sorted(set(record.members.values()))

    progress.phase("namespaces and switches", len(namespaces) + len(spec.switches))
    for namespace in namespaces:
        netns.create(namespace)
        progress.advance()
    for switch in spec.switches:
        with open_namespace(home_namespace(spec, switch.name)) as ns:
            ns.ensure_bridge(switch.name)
            for address in switch.addresses:
                ns.ensure_address(switch.name, str(address))
        progress.advance()

    progress.phase("links", len(spec.links))
    for link in spec.links:
        with open_namespace(home_namespace(spec, link.a.node)) as ns:
            ns.ensure_veth(link.a.ifname, link.b.ifname, home_namespace(spec, link.b.node))
        for end in (link.a, link.b):
            _configure_end(spec, end)
        progress.advance()

    progress.phase("routes, forwarding, NAT and commands", len(spec.hosts))
    for host in spec.hosts:
        namespace = home_namespace(spec, host.name)
        with open_namespace(namespace) as ns:
            ns.sync_routes(Route(r.to, r.via, r.dev) for r in host.routes)
        if host.forwarding:
            sysctl.ensure(namespace, "net.ipv4.ip_forward", "1")
        nat = render_masquerade(host)
        if nat:
            NetlinkNft.in_namespace(namespace).run(nat)
        if host.command:
            processes.start(namespace, host.command, record.log_path(f"host-{host.name}"))
        progress.advance()
    deadline = time.monotonic() + processes.READY_TIMEOUT
    for host in spec.hosts:
        if host.ready_port:
            processes.wait_listening(home_namespace(spec, host.name), host.ready_port, deadline)


def _configure_end(spec: TopologySpec, end: LinkEnd) -> None:
    with open_namespace(home_namespace(spec, end.node)) as ns:
        if spec.switch(end.node):
            ns.set_master(end.ifname, end.node)
        for address in end.addresses:
            ns.ensure_address(end.ifname, str(address))
        ns.set_up(end.ifname)
