"""Addresses on the links of one namespace, as "ip/prefix" strings; IPv4 ones
get their broadcast address as `ip address add ... brd +` gives it. IPv6 ones
are added without Duplicate Address Detection (`ip address add ... nodad`), so
they answer at once instead of staying "tentative" for a second or two."""

from __future__ import annotations

import errno
import ipaddress
from typing import Any

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

from podnet.kernel.links import Links
from podnet.kernel.rtnl import CREATE, NetlinkFailure, family, message

_RTM_NEWADDR, _RTM_DELADDR, _RTM_GETADDR = 20, 21, 22
_IFA_F_NODAD = 0x02


class Addresses(Links):
    def addresses(self, ifname: str) -> set[str]:
        """Addresses on the link as "ip/prefix" strings."""
        index = self.require_index(ifname)
        return {f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}"
                for msg in self._nl.dump(_RTM_GETADDR, message(ifaddrmsg))
                if msg["index"] == index}

    def _address(self, ifname: str, cidr: str) -> Any:
        iface = ipaddress.ip_interface(cidr)
        address = str(iface.ip)
        attrs: list[tuple[str, Any]] = [("IFA_ADDRESS", address)]
        if iface.version == 4:
            attrs.append(("IFA_LOCAL", address))
            if iface.network.prefixlen < 31:
                attrs.append(("IFA_BROADCAST", str(iface.network.broadcast_address)))
        flags = _IFA_F_NODAD if iface.version == 6 else 0
        return message(ifaddrmsg, attrs, family=family(address), prefixlen=iface.network.prefixlen,
                       flags=flags, index=self.require_index(ifname))

    def ensure_address(self, ifname: str, cidr: str) -> None:
        """Add the address; one that is already there is fine."""
        self.add_address(ifname, cidr)

    def add_address(self, ifname: str, cidr: str) -> bool:
        """Add the address; False when it was there already (one request either way).
        An IPv6 address skips Duplicate Address Detection (IPv4 has none): podnet
        plans every address it adds, and a tentative one would not answer for a
        second or two."""
        try:
            self._nl.request(_RTM_NEWADDR, self._address(ifname, cidr), CREATE)
        except NetlinkFailure as err:
            if err.code == errno.EEXIST:
                return False
            raise self._fail(f"add address {cidr} to {ifname}", err) from err
        return True

    def remove_address(self, ifname: str, cidr: str) -> None:
        self._change(f"remove address {cidr} from {ifname}", _RTM_DELADDR, self._address(ifname, cidr),
                     tolerate=(errno.EADDRNOTAVAIL, errno.ENOENT))
