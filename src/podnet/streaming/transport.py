"""A TLS connection that one thread reads while others write.

OpenSSL does not allow an SSL object to be used by two threads at once, and a
streaming session reads frames on one thread while its streams write on others.
So TLS runs over memory BIOs: the SSL object is touched only under a lock, held
for the (short) encrypt or decrypt, never while waiting on the network."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Protocol

RECEIVE_SIZE = 256 * 1024


class Transport(Protocol):
    """A byte stream: what SPDY sessions, WebSocket connections and HTTP parsing share."""

    def recv(self) -> bytes:
        """The next bytes, as many as have arrived; b"" once the peer is gone."""

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of data, in order with other senders; ConnectionError if the peer is gone."""

    def close(self) -> None: ...


class TlsTransport:
    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str | None = None) -> None:
        self._sock = sock
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=server_hostname is None,
                                     server_hostname=server_hostname)
        self._tls_lock = threading.Lock()  # the SSL object and its BIOs
        self._send_lock = threading.Lock()  # the order of bytes on the socket; taken before _tls_lock
        self._closed = False

    def handshake(self, timeout: float) -> None:
        """Complete the TLS handshake; ssl.SSLError (a refused certificate) or ConnectionError."""
        self._sock.settimeout(timeout)
        try:
            while True:
                try:
                    with self._tls_lock:
                        self._tls.do_handshake()
                    return
                except ssl.SSLWantReadError:
                    self._flush()
                    if not self._pull():
                        raise ConnectionError("the peer closed the connection during the TLS handshake") from None
        finally:
            self._flush()  # the last handshake message, or the alert that explains a refusal
            self._sock.settimeout(None)

    def peer_common_name(self) -> str | None:
        """The CN of the verified client certificate."""
        certificate = self._tls.getpeercert() or {}
        for rdn in certificate.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return None

    def set_timeout(self, seconds: float | None) -> None:
        """Bound each wait for the peer (a request's headers); None waits as long as it takes."""
        self._sock.settimeout(seconds)

    def recv(self) -> bytes:
        """Everything already decrypted or decryptable without waiting, up to
        RECEIVE_SIZE: the parsers above cost per call, not per byte."""
        while True:
            pieces: list[bytes] = []
            size = 0
            try:
                with self._tls_lock:
                    while size < RECEIVE_SIZE:
                        piece = self._tls.read(RECEIVE_SIZE - size)
                        pieces.append(piece)
                        size += len(piece)
                        if not self._incoming.pending and not self._tls.pending():
                            break
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLError, ValueError):
                if not pieces:
                    return b""  # close_notify, a cut connection, or a closed transport
            if self._outgoing.pending:
                self._flush()  # what reading made OpenSSL say (a key update's answer)
            if size:
                return pieces[0] if len(pieces) == 1 else b"".join(pieces)
            if not self._pull():
                return b""

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_lock:
            try:
                with self._tls_lock:
                    self._tls.write(data)
                    out = self._outgoing.read()
                self._sock.sendall(out)
            except (OSError, ssl.SSLError, ValueError) as err:
                raise ConnectionError(f"cannot send: {err}") from None

    def close(self) -> None:
        """Close now; a thread blocked in recv wakes up and sees the end."""
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def _pull(self) -> bool:
        try:
            raw = self._sock.recv(RECEIVE_SIZE)
        except OSError:
            raw = b""
        with self._tls_lock:
            if raw:
                self._incoming.write(raw)
            else:
                self._incoming.write_eof()
        return bool(raw)

    def _flush(self) -> None:
        with self._send_lock:
            with self._tls_lock:
                out = self._outgoing.read()
            if out:
                try:
                    self._sock.sendall(out)
                except OSError:
                    pass  # the peer is gone: the next recv sees it


class Replayed:
    """A transport whose first bytes were already read: those that followed the
    request an upgrade answered, which belong to the new protocol."""

    def __init__(self, transport: Transport, data: bytes) -> None:
        self._transport = transport
        self._data = data

    def recv(self) -> bytes:
        if self._data:
            data, self._data = self._data, b""
            return data
        return self._transport.recv()

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        self._transport.sendall(data)

    def close(self) -> None:
        self._transport.close()
