"""The UDP server's memo of rendered answers stays bounded and keeps taking new
answers once full: forwarded names have no bound, and a memo that took nothing
more left the zone's answers to the slow path."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from podnet.dns import udp


def test_the_oldest_answer_makes_room(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(udp, "ANSWER_MEMO_SIZE", 3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        server = udp.UdpServer(SimpleNamespace(counters=[]), sock, None)  # type: ignore[arg-type]
        for i in range(5):
            server._remember(f"forwarded{i}".encode(), b"answer", 0)
        server._remember(b"zone", b"answer", 0)
    assert list(server._memo) == [b"forwarded3", b"forwarded4", b"zone"]
