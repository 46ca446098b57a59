"""The DNS fast path on real sockets: a reply reaches its client under the
client's ID only when it repeats the question; silence and truncation go to the
slow path."""

from __future__ import annotations

import socket
import time

import dns.flags
import dns.message

from podnet.dns.datagrams import Datagrams
from podnet.dns.fastforward import FastForward, plain_question
from podnet.dns.forward import Forwarder
from podnet.kernel import netns
from tests.helpers import in_netns

UPSTREAM, SERVER = ("127.0.0.1", 5399), ("127.0.0.1", 5398)


def _scenario() -> tuple[list[bytes], list[tuple[bytes, tuple[str, int], tuple[str, int]]]]:
    upstream, server, client = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3))
    upstream.bind(UPSTREAM)
    server.bind(SERVER)
    client.settimeout(2)
    upstream.settimeout(2)
    kept: list[bytes] = []
    slow: list[tuple[bytes, tuple[str, int], tuple[str, int]]] = []
    fast = FastForward(Forwarder([UPSTREAM], timeout=0.3), socket.AF_INET, lambda q, k, r: kept.append(r),
                       lambda q, c, u: slow.append((q, c, u)))
    incoming = Datagrams(server)
    (fd,) = fast.sockets

    def ask(name: str) -> tuple[dns.message.Message, bytes]:
        query = dns.message.make_query(name, "A")
        client.sendto(query.to_wire(), SERVER)
        (data,) = incoming.receive()
        fast.send(data, plain_question(data).key, incoming.name_of(0), time.monotonic())  # type: ignore[union-attr]
        fast.flush()
        sent, _ = upstream.recvfrom(512)
        return query, sent

    def answer(sent: bytes, name: str, truncated: bool = False) -> None:
        reply = dns.message.make_response(dns.message.from_wire(sent))
        reply.question = dns.message.make_query(name, "A").question
        if truncated:
            reply.flags |= dns.flags.TC
        upstream.sendto(reply.to_wire(), fast.sockets[fd][1].sock.getsockname())
        time.sleep(0.05)
        fast.read(fd, incoming)
        incoming.send()

    query, sent = ask("one.example.org")
    assert sent[2:] == query.to_wire()[2:]  # the client's bytes, under an ID of ours
    answer(sent, "other.example.org")  # a reply to another question is not taken
    answer(sent, "ONE.example.org")
    received = dns.message.from_wire(client.recv(512))
    assert received.id == query.id and str(received.question[0].name) == "one.example.org."
    _, sent = ask("two.example.org")
    answer(sent, "two.example.org", truncated=True)
    ask("three.example.org")  # never answered
    time.sleep(0.45)
    fast.sweep()
    fast.close()
    return kept, slow


def test_replies_reach_their_client_and_the_rest_goes_the_slow_way(make_netns) -> None:  # type: ignore[no-untyped-def]
    name = make_netns()
    in_netns(name, "ip", "link", "set", "lo", "up")
    kept, slow = netns.run_in(name, _scenario)
    assert len(kept) == 1
    assert [dns.message.from_wire(q).question[0].name.to_text() for q, _, _ in slow] == [
        "two.example.org.", "three.example.org."]
    assert all(upstream == UPSTREAM and client[0] == "127.0.0.1" for _, client, upstream in slow)
