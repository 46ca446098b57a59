"""Datagrams in batches: recvmmsg(2) and sendmmsg(2) through ctypes.

Under load a DNS server's time goes to system calls, one to read each query and
one to send each answer. These calls move every datagram waiting on the socket
(up to a batch) in one, so a busy server makes two system calls per batch
instead of two per query; with a single query waiting it is one recvfrom and
one sendto, as before. Python's socket module has no binding for them.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import struct

_MSG_WAITFORONE = 0x10000  # block for the first datagram only, then take what is there
_SOCKADDR_SIZE = 28  # sockaddr_in6, which also holds a sockaddr_in


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.c_void_p),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("length", ctypes.c_uint)]


_HEADER_WORDS = ctypes.sizeof(_MMsgHdr) // 4  # an mmsghdr in 32-bit words
_LENGTH_WORD = _MMsgHdr.length.offset // 4  # where the kernel writes a datagram's length
_NAME_QWORD = _MsgHdr.name.offset // 8

_libc = ctypes.CDLL(None, use_errno=True)  # calls release the GIL while they block
_recvmmsg = _libc.recvmmsg
_recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]


def _buffer(size: int) -> tuple[bytearray, int]:
    memory = bytearray(size)
    return memory, ctypes.addressof((ctypes.c_char * size).from_buffer(memory))


def _headers(count: int, names: int, buffers: int, slot: int) -> tuple[ctypes.Array[_MMsgHdr], ctypes.Array[_IoVec]]:
    headers, vectors = (_MMsgHdr * count)(), (_IoVec * count)()
    for i in range(count):
        vectors[i].base, vectors[i].length = buffers + i * slot, slot
        header = headers[i].hdr
        header.name, header.namelen = names + i * _SOCKADDR_SIZE, _SOCKADDR_SIZE
        header.iov, header.iovlen = ctypes.addressof(vectors[i]), 1
    return headers, vectors


class Datagrams:
    """A UDP socket read and answered a batch at a time, by one thread.

    `receive()` returns the datagrams now waiting; `reply(i, ...)` queues an answer
    to the sender of the i-th, and `send()` sends all queued answers at once."""

    def __init__(self, sock: socket.socket, batch: int = 64, size: int = 4096) -> None:
        self.sock, self.fd, self.family, self.batch, self.size = sock, sock.fileno(), sock.family, batch, size
        self._in, self._in_at = _buffer(batch * size)
        self._names, self._names_at = _buffer(batch * _SOCKADDR_SIZE)
        self._in_headers, self._in_vectors = _headers(batch, self._names_at, self._in_at, size)
        self._out, self._out_at = _buffer(batch * size)
        self._out_names, self._out_names_at = _buffer(batch * _SOCKADDR_SIZE)  # for queue()'s addresses
        self._out_headers, self._out_vectors = _headers(batch, self._out_names_at, self._out_at, size)
        self._in_words = memoryview(self._in_headers).cast("B").cast("I")  # type: ignore[arg-type]
        self._out_qwords = memoryview(self._out_headers).cast("B").cast("Q")  # type: ignore[arg-type]
        self._out_lengths = memoryview(self._out_vectors).cast("B").cast("Q")  # type: ignore[arg-type]
        self._in_view, self._out_view = memoryview(self._in), memoryview(self._out)
        self._queued = 0

    def receive(self) -> list[bytes]:
        """Blocks until at least one datagram is there; raises OSError when the socket fails."""
        while True:
            count = _recvmmsg(self.fd, ctypes.addressof(self._in_headers), self.batch, _MSG_WAITFORONE, None)
            if count >= 0:
                break
            if ctypes.get_errno() != errno.EINTR:
                raise OSError(ctypes.get_errno(), "recvmmsg failed")
        view, words, size, step, at = self._in_view, self._in_words, self.size, _HEADER_WORDS, _LENGTH_WORD
        return [bytes(view[i * size:i * size + words[i * step + at]]) for i in range(count)]

    def reply(self, i: int, head: bytes, body: bytes) -> None:
        """Queues head + body for the sender of datagram i (one larger than a slot
        goes at once, on its own)."""
        if len(head) + len(body) > self.size:
            try:
                self.sock.sendto(head + body, self.peer(i))
            except OSError:
                pass  # unreachable sender, as in send()
            return
        self._fill(self._slot(), head, body, self._names_at + i * _SOCKADDR_SIZE)

    def queue(self, data: bytes, name: bytes | None = None) -> None:
        """Queues data for the raw address `name` (a sockaddr, as name_of gives), or
        with None for a connected socket's peer."""
        if len(data) > self.size:
            try:
                self.sock.send(data) if name is None else self.sock.sendto(data, address(self.family, name))
            except OSError:
                pass
            return
        k = self._slot()
        if name is not None:
            self._out_names[k * _SOCKADDR_SIZE:k * _SOCKADDR_SIZE + len(name)] = name
        self._fill(k, b"", data, self._out_names_at + k * _SOCKADDR_SIZE if name is not None else 0)

    def _slot(self) -> int:
        """The next free slot; a full queue is sent first."""
        if self._queued == self.batch:
            self.send()
        return self._queued

    def _fill(self, k: int, head: bytes, body: bytes, name_at: int) -> None:
        """Slot k holds head + body for the address at name_at (0: the connected peer)."""
        start, length = k * self.size, len(head) + len(body)
        self._out_view[start:start + len(head)] = head
        self._out_view[start + len(head):start + length] = body
        self._out_lengths[k * 2 + 1] = length
        header = k * (_HEADER_WORDS // 2)
        self._out_qwords[header + _NAME_QWORD] = name_at
        self._out_qwords[header + _NAME_QWORD + 1] = _SOCKADDR_SIZE if name_at else 0  # the name's length
        self._queued = k + 1

    def name_of(self, i: int) -> bytes:
        """The raw address of datagram i's sender, for queue()."""
        return bytes(self._names[i * _SOCKADDR_SIZE:(i + 1) * _SOCKADDR_SIZE])

    def send(self) -> int:
        """Sends what reply() or queue() queued. A datagram the kernel refuses (its
        receiver is unreachable) is dropped, as sendto's error would be; returns
        the errno of the last refusal, 0 for none."""
        first, queued, headers, refused = 0, self._queued, ctypes.addressof(self._out_headers), 0
        while first < queued:
            sent = _sendmmsg(self.fd, headers + first * ctypes.sizeof(_MMsgHdr), queued - first, 0)
            if sent > 0:
                first += sent
            elif ctypes.get_errno() != errno.EINTR:
                refused = ctypes.get_errno()
                first += 1
        self._queued = 0
        return refused

    def peer(self, i: int) -> tuple[str, int] | tuple[str, int, int, int]:
        """The sender of datagram i, as socket.sendto takes it."""
        return address(self.family, self._names[i * _SOCKADDR_SIZE:(i + 1) * _SOCKADDR_SIZE])


def address(family: int, name: bytes | bytearray) -> tuple[str, int] | tuple[str, int, int, int]:
    (port,) = struct.unpack_from("!H", name, 2)
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, name[4:8]), port
    flowinfo, scope = struct.unpack_from("!I", name, 4)[0], struct.unpack_from("=I", name, 24)[0]
    return socket.inet_ntop(socket.AF_INET6, name[8:24]), port, flowinfo, scope
