"""One container interface's DHCP lease: acquired (DISCOVER, OFFER, REQUEST,
ACK), kept (RENEWING at T1 to its server, REBINDING at T2 to any), and given back
(RELEASE). When no server renews it, the interface goes down at expiry, as the
reference plugin's does."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from podnet.errors import PodnetError
from podnet.kernel.packet import PacketPort, prepare_link, set_down
from podnet.ipam.dhcp.wire import Client, Reply, parse

log = logging.getLogger("podnet.ipam.dhcp")
FIRST_RETRANSMIT = 1.0  # then 2, 4, ... s, within the exchange's timeout (RFC 2131 4.1 backs off from 4 s)
MIN_RETRY = 5.0  # between renewal attempts, at least (RFC 2131 says 60 s; leases here may be 2 minutes)


class DhcpError(PodnetError):
    pass


@dataclass(frozen=True)
class Terms:
    """Who asks, where, for what."""

    client_id: str
    ns_path: str
    ifname: str
    requests: tuple[int, ...]
    provides: tuple[tuple[int, bytes], ...] = ()
    timeout: float = 10.0  # for each exchange


class Lease:
    def __init__(self, terms: Terms, on_expiry: Callable[[Lease], None] = lambda _: None,
                 on_commit: Callable[[Lease], None] = lambda _: None) -> None:
        self.terms = terms
        self.ack: Reply | None = None
        self.acquired_at = 0.0  # time.monotonic() of the last ACK
        self._client: Client | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_expiry = on_expiry
        self._on_commit = on_commit

    @property
    def name(self) -> str:
        return self.terms.client_id

    def acquire(self) -> Reply:
        link = prepare_link(self.terms.ns_path, self.terms.ifname)
        self._client = client = Client(link.mac, self.terms.client_id, self.terms.requests, self.terms.provides)
        with PacketPort(self.terms.ns_path, self.terms.ifname) as port:
            offer = self._exchange(port, client.discover, {"offer"}, "an offer")
            ack = self._exchange(port, lambda xid: client.select(xid, offer), {"ack", "nak"}, "an answer to its request")
        if ack.kind == "nak":
            raise DhcpError(f"{self._where()}: the DHCP server {offer.server} refused its own offer of {offer.address}")
        self._commit(ack)
        log.info("%s: leased %s from %s for %d s", self.name, ack.address, ack.server, ack.lease_seconds)
        return ack

    def resume(self, ack: Reply, age: float) -> None:
        """A lease a daemon before this one acquired `age` seconds ago: kept from
        where it stands (renewed at once if T1 has passed)."""
        link = prepare_link(self.terms.ns_path, self.terms.ifname)
        self._client = Client(link.mac, self.terms.client_id, self.terms.requests, self.terms.provides)
        self.ack, self.acquired_at = ack, time.monotonic() - age

    def start(self) -> None:
        """Keep the lease, on a thread of its own, until stop()."""
        self._thread = threading.Thread(target=self._maintain, name=f"dhcp:{self.name[:40]}", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.terms.timeout + 1)
        if release and self.ack is not None and self._client is not None:
            try:
                with PacketPort(self.terms.ns_path, self.terms.ifname) as port:
                    port.send(self._client.release(random.getrandbits(32), self.ack))
                log.info("%s: released %s", self.name, self.ack.address)
            except PodnetError as err:  # the interface or namespace is gone: the server lets the lease lapse
                log.info("%s: could not send a release (%s)", self.name, err)

    def _where(self) -> str:
        return f"{self.terms.ifname} in {self.terms.ns_path}"

    def _commit(self, ack: Reply) -> None:
        ack.interface  # noqa: B018 - a lease without a subnet mask is refused here, before it is kept
        self.ack, self.acquired_at = ack, time.monotonic()
        self._on_commit(self)

    def _exchange(self, port: PacketPort, frame: Callable[[int], bytes], kinds: set[str], what: str,
                  timeout: float | None = None) -> Reply:
        """Send, and resend with backoff, until a reply of the kinds wanted comes."""
        xid = random.getrandbits(32)
        deadline = time.monotonic() + (timeout or self.terms.timeout)
        delay = FIRST_RETRANSMIT
        while time.monotonic() < deadline:
            port.send(frame(xid))
            resend = min(time.monotonic() + delay, deadline)
            while (raw := port.receive(resend)) is not None:
                reply = parse(raw)
                if reply is not None and reply.xid == xid and reply.kind in kinds:
                    return reply
            delay *= 2
        raise DhcpError(f"{self._where()}: no DHCP server sent {what} within {timeout or self.terms.timeout:.0f} s")

    def _renewed(self, frame: Callable[[int], bytes], what: str) -> bool:
        try:
            with PacketPort(self.terms.ns_path, self.terms.ifname) as port:
                ack = self._exchange(port, frame, {"ack", "nak"}, what)
        except PodnetError as err:
            log.warning("%s: %s", self.name, err)
            return False
        if ack.kind == "nak":
            log.warning("%s: the server refused to extend the lease of %s", self.name, ack.address)
            return False
        self._commit(ack)
        log.info("%s: lease of %s extended by %d s", self.name, ack.address, ack.lease_seconds)
        return True

    def _maintain(self) -> None:
        while not self._stop.is_set():
            ack, client = self.ack, self._client
            assert ack is not None and client is not None, "maintained only once acquired"
            start = self.acquired_at
            renew_at, rebind_at, expires = (start + ack.renew_seconds, start + ack.rebind_seconds,
                                            start + ack.lease_seconds)
            if self._stop.wait(max(0.0, renew_at - time.monotonic())):
                return
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= expires:
                    log.warning("%s: lease of %s expired unrenewed; taking %s down", self.name, ack.address,
                                self.terms.ifname)
                    try:
                        set_down(self.terms.ns_path, self.terms.ifname)
                    except PodnetError:
                        pass  # the namespace is gone, and the interface with it
                    self._on_expiry(self)
                    return
                rebinding = now >= rebind_at
                frame = (lambda xid: client.rebind(xid, ack)) if rebinding else (lambda xid: client.renew(xid, ack))
                if self._renewed(frame, "a rebinding answer" if rebinding else "a renewal answer"):
                    break
                left = (expires if rebinding else rebind_at) - time.monotonic()
                if self._stop.wait(min(max(MIN_RETRY, left / 2), max(0.1, expires - time.monotonic()))):
                    return
