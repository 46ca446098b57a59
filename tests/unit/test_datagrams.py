"""Datagrams in batches (recvmmsg/sendmmsg) on loopback sockets: what waits is read
in one call, and each answer reaches the socket that asked."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from podnet.dns.datagrams import Datagrams


@pytest.fixture(params=[(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")], ids=["ipv4", "ipv6"])
def server(request: pytest.FixtureRequest) -> Iterator[socket.socket]:
    family, host = request.param
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    yield sock
    sock.close()


def client(server: socket.socket) -> socket.socket:
    sock = socket.socket(server.family, socket.SOCK_DGRAM)
    sock.settimeout(2)
    sock.connect(server.getsockname()[:2])
    return sock


def test_what_waits_is_read_at_once_and_each_answer_reaches_its_sender(server: socket.socket) -> None:
    clients = [client(server) for _ in range(3)]
    for n, sock in enumerate(clients * 2):
        sock.send(b"question %d" % n)
    datagrams = Datagrams(server, batch=16)
    batch = datagrams.receive()
    assert batch == [b"question %d" % n for n in range(6)]
    for i, question in enumerate(batch):
        datagrams.reply(i, b"answer to ", question)
    datagrams.send()
    for n, sock in enumerate(clients * 2):
        assert sock.recv(100) == b"answer to question %d" % n
    assert [datagrams.peer(i)[1] for i in range(6)] == [sock.getsockname()[1] for sock in clients * 2]
    for sock in clients:
        sock.close()


def test_a_batch_is_at_most_its_size_and_the_rest_waits_for_the_next(server: socket.socket) -> None:
    sock = client(server)
    for n in range(5):
        sock.send(b"%d" % n)
    datagrams = Datagrams(server, batch=3)
    assert datagrams.receive() == [b"0", b"1", b"2"]
    assert datagrams.receive() == [b"3", b"4"]
    sock.close()


def test_an_answer_larger_than_a_slot_still_arrives_whole(server: socket.socket) -> None:
    sock = client(server)
    sock.send(b"big?")
    datagrams = Datagrams(server, batch=4, size=512)
    assert datagrams.receive() == [b"big?"]
    datagrams.reply(0, b"yes", b"x" * 3000)
    datagrams.send()
    assert sock.recv(4000) == b"yes" + b"x" * 3000
    sock.close()


def test_a_datagram_longer_than_a_slot_is_cut_to_it(server: socket.socket) -> None:
    sock = client(server)
    sock.send(b"y" * 700)
    sock.send(b"after")
    assert Datagrams(server, batch=4, size=512).receive() == [b"y" * 512, b"after"]
    sock.close()

