"""DHCP messages (RFC 2131 and 2132) as whole Ethernet frames, built and read
with scapy: a client whose interface has no address yet speaks in frames."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
CLIENT_PORT, SERVER_PORT = 68, 67
KINDS = {2: "offer", 5: "ack", 6: "nak"}

# dhcp-options(5) names (and scapy's) for the options a network config may name in
# "request" and "provide", as the reference plugin accepts them
OPTION_NUMBERS = {
    "subnet-mask": 1, "subnet_mask": 1, "routers": 3, "router": 3, "domain-name-servers": 6, "name_server": 6,
    "host-name": 12, "hostname": 12, "domain-name": 15, "domain": 15, "static-routes": 33,
    "dhcp-client-identifier": 61, "client_id": 61, "classless-static-routes": 121,
    "classless_static_routes": 121,
}
DEFAULT_REQUESTS = (1, 3)  # subnet mask and router: what the reference plugin always asks for


def option_number(name: str | int) -> int:
    """An option by number or name; an unknown one is a ValueError naming it."""
    if isinstance(name, int) or str(name).isdigit():
        number = int(name)
        if 1 <= number <= 254:
            return number
    elif str(name).lower() in OPTION_NUMBERS:
        return OPTION_NUMBERS[str(name).lower()]
    raise ValueError(f"{name!r} is not a DHCP option this plugin knows (a number, or one of "
                     f"{', '.join(sorted(n for n in OPTION_NUMBERS if '-' in n))})")


@dataclass(frozen=True)
class Client:
    """Who asks: the interface's MAC, and the client identifier the lease is held
    under (option 61, type 0 then the text)."""

    mac: str
    client_id: str
    requests: tuple[int, ...] = DEFAULT_REQUESTS
    provides: tuple[tuple[int, bytes], ...] = ()

    def _options(self, kind: str, *extra: tuple[Any, ...]) -> list[Any]:
        options: list[Any] = [("message-type", kind), ("client_id", b"\0" + self.client_id.encode()), *extra]
        if kind in ("discover", "request"):
            options += [(number, value) for number, value in self.provides]  # by number: on the wire as given
            options.append(("param_req_list", list(self.requests)))
        return [*options, "end"]

    def _frame(self, xid: int, options: list[Any], *, source: str = "0.0.0.0", destination: str = "255.255.255.255",
               ciaddr: str = "0.0.0.0") -> bytes:
        chaddr = bytes.fromhex(self.mac.replace(":", "")) + bytes(10)
        return bytes(Ether(src=self.mac, dst=BROADCAST_MAC) / IP(src=source, dst=destination)
                     / UDP(sport=CLIENT_PORT, dport=SERVER_PORT)
                     / BOOTP(op=1, xid=xid, chaddr=chaddr, ciaddr=ciaddr) / DHCP(options=options))

    def discover(self, xid: int) -> bytes:
        return self._frame(xid, self._options("discover"))

    def select(self, xid: int, offer: Reply) -> bytes:
        """REQUEST in SELECTING: this server's offer, broadcast so the others see it was not theirs."""
        return self._frame(xid, self._options("request", ("server_id", offer.server), ("requested_addr", offer.address)))

    def renew(self, xid: int, ack: Reply) -> bytes:
        """REQUEST in RENEWING: to the server that leased it, from the address.
        Unicast in IP, broadcast in Ethernet: the ACK came from the MAC the server
        had then, and a Linux bridge's MAC changes as ports come and go."""
        return self._frame(xid, self._options("request"), source=ack.address, destination=ack.server,
                           ciaddr=ack.address)

    def rebind(self, xid: int, ack: Reply) -> bytes:
        """REQUEST in REBINDING: to any server, broadcast."""
        return self._frame(xid, self._options("request"), source=ack.address, ciaddr=ack.address)

    def release(self, xid: int, ack: Reply) -> bytes:
        return self._frame(xid, self._options("release", ("server_id", ack.server)), source=ack.address,
                           destination=ack.server, ciaddr=ack.address)  # broadcast in Ethernet, as renew()


@dataclass(frozen=True)
class Reply:
    """A server's OFFER, ACK or NAK, and what it leased."""

    kind: str
    xid: int
    address: str  # yiaddr
    server: str  # option 54, or the sender's address
    options: dict[str, tuple[Any, ...]] = field(default_factory=dict, hash=False)
    frame: bytes = field(default=b"", compare=False, repr=False)  # as it came, for the daemon's records

    def first(self, name: str) -> Any:
        values = self.options.get(name)
        return values[0] if values else None

    @property
    def interface(self) -> ipaddress.IPv4Interface:
        mask = self.first("subnet_mask")
        if mask is None:
            raise ValueError("the server's answer has no subnet mask (option 1)")
        return ipaddress.IPv4Interface(f"{self.address}/{mask}")

    @property
    def gateway(self) -> str | None:
        return self.first("router")

    @property
    def lease_seconds(self) -> int:
        return int(self.first("lease_time") or 0)

    @property
    def renew_seconds(self) -> float:
        """T1, or half the lease (RFC 2131 4.4.5), and never after T2."""
        t1 = self.first("renewal_time")
        return float(t1) if t1 is not None and t1 <= self.rebind_seconds else self.lease_seconds / 2

    @property
    def rebind_seconds(self) -> float:
        t2 = self.first("rebinding_time")
        return float(t2) if t2 is not None and t2 <= self.lease_seconds else self.lease_seconds * 0.875

    @property
    def routes(self) -> list[tuple[str, str | None]]:
        """(destination, gateway): option 121 alone when present (RFC 3442), else
        option 33's host routes and a default route via the router, as the
        reference plugin reports them."""
        classless = self.options.get("classless_static_routes")
        if classless:
            entries = classless[0] if isinstance(classless[0], list) else classless  # scapy: one list of "dst:gw"
            return [(str(ipaddress.ip_network(dst, strict=False)), gw) for dst, _, gw in
                    (str(entry).partition(":") for entry in entries)]
        static = list(self.options.get("static-routes", ()))
        routes: list[tuple[str, str | None]] = [(f"{static[i]}/32", static[i + 1]) for i in range(0, len(static) - 1, 2)]
        if self.gateway:
            routes.append(("0.0.0.0/0", self.gateway))
        return routes


def parse(frame: bytes) -> Reply | None:
    """A DHCP reply to a client, or None for any other frame."""
    try:
        packet = Ether(frame)
    except Exception:  # noqa: BLE001 - scapy raises what it likes on a truncated frame
        return None
    if DHCP not in packet or UDP not in packet or packet[UDP].dport != CLIENT_PORT or packet[BOOTP].op != 2:
        return None
    options: dict[str, tuple[Any, ...]] = {}
    for option in packet[DHCP].options:
        if isinstance(option, tuple) and len(option) >= 2:
            options[str(option[0])] = tuple(option[1:])
    kind = KINDS.get(int(options.get("message-type", (0,))[0]))
    if kind is None:
        return None
    server = options.get("server_id", (packet[IP].src,))[0]
    return Reply(kind, int(packet[BOOTP].xid), str(packet[BOOTP].yiaddr), str(server), options, frame)
