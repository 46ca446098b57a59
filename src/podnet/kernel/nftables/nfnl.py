"""The netlink backend: a transaction sent to the kernel as one nf_tables batch.

No process is started and nothing is parsed: the objects are packed (batch.py)
and written to a NETLINK_NETFILTER socket in the namespace, and the kernel
applies the whole batch or none of it. What the encoder does not build (an inline
set of ranges, say) goes to nft's script interface whole. Listings go through nft
too: they are not on any hot path, and nft prints them the way people read them.
"""

from __future__ import annotations

import os
import socket
import threading

from podnet.errors import KernelError
from podnet.gcpause import collector_paused
from podnet.kernel import netns
from podnet.kernel.nftables.batch import Batch, encode
from podnet.kernel.nftables.nft import Nft
from podnet.kernel.nftables.objects import Element, Set, Table
from podnet.kernel.nftables.transaction import Transaction
from podnet.kernel.nftables.wire import Unsupported
from podnet.kernel.nlmsg import NETLINK_NETFILTER, NLMSG_ERROR, error_code, extended_ack_message, messages

_SOL_NETLINK, _NETLINK_EXT_ACK, _NETLINK_CAP_ACK = 270, 11, 10
_SO_SNDBUFFORCE, _SO_RCVBUFFORCE = 32, 33


class NftRefused(KernelError):
    """The kernel refused a batch; `code` is the errno of the first refusal."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


class NetlinkNft:
    """nftables in one network namespace, through netlink batches.

    One instance may serve many threads: a batch is encoded, sent and answered
    under its lock, on its one socket (which belongs to the namespace, not to a
    thread)."""

    def __init__(self, ns_path: str) -> None:
        self.ns_path = ns_path
        self.script = Nft(ns_path)
        self._sock: socket.socket | None = None
        self._sequence = 0
        self._lock = threading.Lock()
        # The sets this instance last declared, by table: an elements-only
        # transaction (a CNI ADD's one address) is laid out by them. They are the
        # instance's own, as what it sent is all it knows; whoever sends elements
        # alone keeps one instance for the namespace (a node's NamespaceKernel,
        # cni/hostns.host_nft). Declarations are constants of podnet's code; should
        # the kernel's differ, it refuses a key of the wrong length.
        self._declared: dict[Table, dict[str, Set]] = {}

    @classmethod
    def in_namespace(cls, name: str) -> NetlinkNft:
        return cls(str(netns.path(name)))

    def run(self, tx: Transaction) -> None:
        if not tx:
            return
        netns.guard_root(self.ns_path, "nftables")
        with self._lock:
            try:
                with collector_paused():  # a full sync allocates a few hundred thousand objects
                    batch = encode(tx, self._declared.get(tx.table, {}))
            except Unsupported:
                self._forget(tx)
                self.script.run(tx)
                return
            self._send(batch)
            self._remember(tx)

    def list_elements(self, table: Table, set_name: str, kind: str = "set") -> list[Element]:
        return self.script.list_elements(table, set_name, kind)

    def list_ruleset(self) -> str:
        return self.script.list_ruleset()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _remember(self, tx: Transaction) -> None:
        """Sets declared here lay out the elements later transactions send alone."""
        declared = self._declared.setdefault(tx.table, {})
        for verb, obj in tx.operations:
            if isinstance(obj, Table) and verb in ("replace", "delete", "destroy"):
                declared.clear()
            elif isinstance(obj, Set) and verb in ("add", "create"):
                declared[obj.name] = obj
            elif isinstance(obj, Set) and verb in ("delete", "destroy"):
                declared.pop(obj.name, None)

    def _forget(self, tx: Transaction) -> None:
        """After nft changed a table, what this backend knew of its sets may be stale."""
        self._declared.pop(tx.table, None)

    def _socket(self) -> socket.socket:
        if self._sock is None:
            def open_socket() -> socket.socket:
                return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            sock = netns.run_in_path(self.ns_path, open_socket)
            sock.bind((0, 0))
            sock.setsockopt(_SOL_NETLINK, _NETLINK_EXT_ACK, 1)
            sock.setsockopt(_SOL_NETLINK, _NETLINK_CAP_ACK, 1)  # errors echo the header, not a 60 kB message
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, 4 << 20)
            sock.settimeout(60)  # the kernel always answers a batch; a hang would be a bug to report, not wait out
            self._sock = sock
        return self._sock

    def _send(self, batch: Batch) -> None:
        sock = self._socket()
        first = self._sequence + 1
        self._sequence += len(batch.messages) + 2
        data = b"".join(batch.frames(first))
        if len(data) > sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2 - 64:
            sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, len(data) + 4096)
        sock.send(data)
        last = first + len(batch.messages)  # the one message that asks for an ack
        refusal: NftRefused | None = None
        while True:
            try:
                answer = sock.recv(1 << 20)
            except socket.timeout:
                raise KernelError(f"nft: no answer from the kernel to a batch of {len(batch.messages)} messages") \
                    from None
            for kind, flags, sequence, message in messages(answer):
                if kind != NLMSG_ERROR or not first <= sequence <= last:
                    continue
                code = error_code(message)
                if code and refusal is None:
                    what = batch.messages[sequence - first - 1].what if sequence > first else "batch"
                    detail = extended_ack_message(message, flags)
                    reason = f"{detail} ({os.strerror(code)})" if detail else os.strerror(code)
                    refusal = NftRefused(code, f"nft: {what}: {reason}")
                if sequence == last or sequence == first:
                    if refusal is not None:
                        raise refusal
                    return
