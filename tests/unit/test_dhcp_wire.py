"""DHCP messages as frames, and what a lease's answer means (no kernel)."""

from __future__ import annotations

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from podnet.ipam.dhcp.daemon import client_id, lease_options
from podnet.ipam.dhcp.wire import Client, option_number, parse

MAC = "02:00:00:00:00:01"
SERVER_MAC = "02:00:00:00:00:fe"


def answer(kind: int, xid: int = 7, **options: object) -> bytes:
    opts = [("message-type", kind), ("server_id", "10.0.0.1"), *options.items(), "end"]
    return bytes(Ether(src=SERVER_MAC, dst=MAC) / IP(src="10.0.0.1", dst="10.0.0.50") / UDP(sport=67, dport=68)
                 / BOOTP(op=2, xid=xid, yiaddr="10.0.0.50") / DHCP(options=opts))


def test_discover_asks_for_mask_and_router_under_the_client_id() -> None:
    frame = Ether(Client(MAC, "c1/net/eth0", provides=((12, b"web-0"),)).discover(42))
    assert frame[Ether].dst == "ff:ff:ff:ff:ff:ff" and frame[IP].src == "0.0.0.0" and frame[BOOTP].xid == 42
    options = dict(o for o in frame[DHCP].options if isinstance(o, tuple))
    assert options["message-type"] == 1 and options["client_id"] == b"\0c1/net/eth0"
    assert options["param_req_list"] == [1, 3] and options["hostname"] == b"web-0"
    assert frame[BOOTP].chaddr[:6] == bytes.fromhex("020000000001")


def test_renew_goes_to_the_server_that_leased_and_release_names_it() -> None:
    ack = parse(answer(5, subnet_mask="255.255.255.0", router="10.0.0.1", lease_time=120))
    assert ack is not None
    client = Client(MAC, "c1/net/eth0")
    renew = Ether(client.renew(9, ack))
    # to the server's IP, but not to the MAC it answered from: a bridge's MAC moves as ports come and go
    assert (renew[Ether].dst, renew[IP].dst, renew[BOOTP].ciaddr) == ("ff:ff:ff:ff:ff:ff", "10.0.0.1", "10.0.0.50")
    rebind = Ether(client.rebind(9, ack))
    assert rebind[Ether].dst == "ff:ff:ff:ff:ff:ff" and rebind[BOOTP].ciaddr == "10.0.0.50"
    release = Ether(client.release(9, ack))
    assert ("message-type", 7) in release[DHCP].options and ("server_id", "10.0.0.1") in release[DHCP].options


def test_an_ack_gives_address_gateway_and_times() -> None:
    ack = parse(answer(5, subnet_mask="255.255.255.0", router="10.0.0.1", lease_time=120))
    assert ack is not None and ack.kind == "ack" and ack.server == "10.0.0.1"
    assert str(ack.interface) == "10.0.0.50/24" and ack.gateway == "10.0.0.1"
    assert (ack.renew_seconds, ack.rebind_seconds) == (60, 105)  # RFC 2131's defaults: 50 % and 87.5 %
    assert ack.routes == [("0.0.0.0/0", "10.0.0.1")]
    timed = parse(answer(5, subnet_mask="255.255.255.0", lease_time=120, renewal_time=10, rebinding_time=20))
    assert timed is not None and (timed.renew_seconds, timed.rebind_seconds) == (10, 20)


def test_classless_routes_replace_the_router_and_static_routes() -> None:
    ack = parse(answer(5, subnet_mask="255.255.255.0", router="10.0.0.1",
                       classless_static_routes=["10.96.0.0/12:10.0.0.254", "0.0.0.0/0:10.0.0.1"]))
    assert ack is not None and ack.routes == [("10.96.0.0/12", "10.0.0.254"), ("0.0.0.0/0", "10.0.0.1")]


def test_other_frames_and_requests_are_not_replies() -> None:
    assert parse(Client(MAC, "x").discover(1)) is None  # a client's own message
    assert parse(b"\x00" * 20) is None
    nak = parse(answer(6))
    assert nak is not None and nak.kind == "nak"
    with pytest.raises(ValueError, match="no subnet mask"):
        parse(answer(5, lease_time=60)).interface  # type: ignore[union-attr]


def test_options_by_name_or_number_as_the_reference_reads_them() -> None:
    assert option_number("routers") == 3 and option_number(121) == 121 and option_number("15") == 15
    with pytest.raises(ValueError, match="'ntp' is not a DHCP option"):
        option_number("ntp")
    requests, provides = lease_options({"request": [{"option": "classless-static-routes"}],
                                        "provide": [{"option": "host-name", "fromArg": "K8S_POD_NAME"}]},
                                       {"K8S_POD_NAME": "web-0"})
    assert requests == (121, 1, 3) and provides == ((12, b"web-0"),)
    assert lease_options({"request": [{"option": "routers", "skipDefault": True}]}, {})[0] == (3,)


def test_the_client_id_is_the_references() -> None:
    assert client_id("abc", "net", "eth0") == "abc/net/eth0"
    assert len(client_id("x" * 300, "net", "eth0")) == 254
