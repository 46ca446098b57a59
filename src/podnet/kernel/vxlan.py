"""VXLAN devices in one namespace, as the vxlan backend's nodes need them; the
peers' neighbours and forwarding entries are neighbours.py's."""

from __future__ import annotations

from podnet.kernel.links import Links


class Vxlan(Links):
    def ensure_vxlan(self, ifname: str, vni: int, local: str, port: int, mac: str, mtu: int,
                     uplink: str | None = None) -> None:
        """A VXLAN device as flannel makes it: no learning (peers are programmed),
        its own MAC (peers' FDB entries point at it), the underlay MTU less the
        tunnel's headers. local is an IPv4 or an IPv6 address: the underlay's family."""
        if self.index(ifname) is None:
            local_attr = "IFLA_VXLAN_LOCAL6" if ":" in local else "IFLA_VXLAN_LOCAL"
            data = [("IFLA_VXLAN_ID", vni), (local_attr, local), ("IFLA_VXLAN_PORT", port),
                    ("IFLA_VXLAN_LEARNING", 0)]
            if uplink:
                data.append(("IFLA_VXLAN_LINK", self.require_index(uplink)))
            self._create_link(f"vxlan {ifname}", [
                ("IFLA_IFNAME", ifname), ("IFLA_ADDRESS", mac), ("IFLA_MTU", mtu),
                ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "vxlan"), ("IFLA_INFO_DATA", {"attrs": data})]})])
        self.set_up(ifname)
