"""The forwarder's UDP sockets, against an upstream on a loopback socket: reused
from one question to the next, and deaf to replies that do not answer the
question asked (another ID, another name)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator

import dns.message
import dns.rrset
import pytest

from podnet.dns.forward import Forwarder

Answerer = Callable[[dns.message.Message], list[dns.message.Message]]


@pytest.fixture
def upstream() -> Iterator[tuple[socket.socket, list[tuple[str, int]], list[Answerer]]]:
    """A socket that answers each query with what the first answerer in the list
    returns for it, and notes the port each query came from."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    peers: list[tuple[str, int]] = []
    answerers: list[Answerer] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            peers.append(peer)
            for reply in answerers[0](dns.message.from_wire(data)):
                sock.sendto(reply.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock, peers, answerers
    stop.set()
    thread.join()
    sock.close()


def address_reply(query: dns.message.Message, ip: str = "203.0.113.10") -> dns.message.Message:
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", ip))
    return reply


def ask(forwarder: Forwarder, *names: str) -> list[dns.message.Message | None]:
    async def run() -> list[dns.message.Message | None]:
        answers = []
        for name in names:
            wire = await forwarder.resolve(dns.message.make_query(name, "A").to_wire())
            answers.append(dns.message.from_wire(wire) if wire is not None else None)
        return answers
    return asyncio.run(run())


def test_one_socket_asks_question_after_question(upstream) -> None:  # type: ignore[no-untyped-def]
    sock, peers, answerers = upstream
    answerers.append(lambda query: [address_reply(query)])
    answers = ask(Forwarder([sock.getsockname()]), "a.example.org.", "b.example.org.", "c.example.org.")
    assert [str(a.question[0].name) for a in answers] == ["a.example.org.", "b.example.org.", "c.example.org."]
    assert len(set(peers)) == 1


def test_a_reply_with_another_id_or_question_is_not_the_answer(upstream) -> None:  # type: ignore[no-untyped-def]
    sock, _, answerers = upstream

    def spoofed_first(query: dns.message.Message) -> list[dns.message.Message]:
        wrong_id = address_reply(query, "192.0.2.66")
        wrong_id.id = (query.id + 1) % 65536
        other_name = address_reply(dns.message.make_query("evil.example.org.", "A"), "192.0.2.67")
        other_name.id = query.id
        return [wrong_id, other_name, address_reply(query)]

    answerers.append(spoofed_first)
    (answer,) = ask(Forwarder([sock.getsockname()]), "www.example.org.")
    assert answer is not None and answer.answer[0][0].address == "203.0.113.10"


def test_a_socket_that_timed_out_is_not_reused(upstream) -> None:  # type: ignore[no-untyped-def]
    """Its answer may still arrive, for the question after."""
    sock, peers, answerers = upstream
    answerers.append(lambda query: [] if str(query.question[0].name) == "slow.example.org." else [address_reply(query)])
    forwarder = Forwarder([sock.getsockname()], timeout=0.3, max_fails=0)
    assert ask(forwarder, "slow.example.org.", "fast.example.org.")[0] is None
    assert len(set(peers)) == 2
