"""Permanent neighbours (ARP and NDP entries) and a device's own forwarding entries
(FDB) in one namespace: what the vxlan backend programs for each peer node.
Each set is synced whole, so a reconcile both adds and removes."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pyroute2.netlink import NLM_F_CREATE, NLM_F_REPLACE
from pyroute2.netlink.rtnl.ndmsg import ndmsg

from podnet.kernel.links import Links
from podnet.kernel.route import ForwardingEntry, Neighbour
from podnet.kernel.rtnl import AF_BRIDGE, AF_INET, AF_INET6, family, message

_RTM_NEWNEIGH, _RTM_DELNEIGH, _RTM_GETNEIGH = 28, 29, 30
_NUD_PERMANENT = 0x80
_NTF_SELF = 0x02

Entry = TypeVar("Entry", Neighbour, ForwardingEntry)


class Neighbours(Links):
    def neighbours(self, ifname: str) -> set[Neighbour]:
        """Permanent neighbours on the link, IPv4 (ARP) and IPv6 (NDP) alike."""
        index = self.require_index(ifname)
        return {Neighbour(msg.get("NDA_DST"), msg.get("NDA_LLADDR"), ifname)
                for af in (AF_INET, AF_INET6)
                for msg in self._nl.dump(_RTM_GETNEIGH, message(ndmsg, family=af))
                if msg["ifindex"] == index and msg["state"] & _NUD_PERMANENT and msg.get("NDA_LLADDR")}

    def _neighbour(self, entry: Neighbour) -> Any:
        return message(ndmsg, [("NDA_DST", entry.ip), ("NDA_LLADDR", entry.mac)], family=family(entry.ip),
                       ifindex=self.require_index(entry.dev), state=_NUD_PERMANENT)

    def forwarding_entries(self, ifname: str) -> set[ForwardingEntry]:
        """The device's own (NTF_SELF) FDB entries that send to a remote address."""
        index = self.require_index(ifname)
        return {ForwardingEntry(msg.get("NDA_LLADDR"), msg.get("NDA_DST"), ifname)
                for msg in self._nl.dump(_RTM_GETNEIGH, message(ndmsg, family=AF_BRIDGE))
                if msg["ifindex"] == index and msg["flags"] & _NTF_SELF and msg.get("NDA_DST")}

    def _forwarding(self, entry: ForwardingEntry) -> Any:
        return message(ndmsg, [("NDA_LLADDR", entry.mac), ("NDA_DST", entry.dst)], family=AF_BRIDGE,
                       ifindex=self.require_index(entry.dev), state=_NUD_PERMANENT, flags=_NTF_SELF)

    def sync_neighbours(self, ifname: str, desired: Iterable[Neighbour]) -> tuple[set[Neighbour], set[Neighbour]]:
        """Make the link's permanent neighbours exactly `desired`; returns (added, removed)."""
        return self._sync(set(desired), self.neighbours(ifname), self._neighbour, "neighbour")

    def sync_forwarding(self, ifname: str,
                        desired: Iterable[ForwardingEntry]) -> tuple[set[ForwardingEntry], set[ForwardingEntry]]:
        """Make the device's FDB entries exactly `desired`; returns (added, removed)."""
        return self._sync(set(desired), self.forwarding_entries(ifname), self._forwarding, "forwarding entry")

    def _sync(self, wanted: set[Entry], present: set[Entry], encode: Callable[[Entry], Any],
              what: str) -> tuple[set[Entry], set[Entry]]:
        stale, missing = present - wanted, wanted - present
        for entry in sorted(stale):
            self._change(f"delete {what} {entry}", _RTM_DELNEIGH, encode(entry), tolerate=(errno.ENOENT,))
        for entry in sorted(missing):
            self._change(f"add {what} {entry}", _RTM_NEWNEIGH, encode(entry), NLM_F_CREATE | NLM_F_REPLACE)
        return missing, stale
