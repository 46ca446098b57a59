"""etcd over TLS with client certificates, as flannel and Calico reach it: the
store carries every pod's address and every policy, so only holders of a
certificate from the cluster's CA may read or write it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from podnet.store.base import StoreError

if TYPE_CHECKING:  # ssl is imported where TLS is spoken: every podnet command reads TlsFiles, few speak TLS
    import socket
    import ssl


@dataclass(frozen=True)
class TlsFiles:
    """flannel's --etcd-cafile, --etcd-certfile and --etcd-keyfile."""

    cafile: str
    certfile: str = ""
    keyfile: str = ""

    def check(self) -> None:
        """A missing or unreadable file, named before any connection is tried."""
        if bool(self.certfile) != bool(self.keyfile):
            raise StoreError("etcd TLS: a client certificate and its key go together (--etcd-certfile, --etcd-keyfile)")
        for what, path in (("CA", self.cafile), ("certificate", self.certfile), ("key", self.keyfile)):
            if path and not Path(path).is_file():
                raise StoreError(f"etcd TLS: the {what} file {path} does not exist")

    def context(self) -> ssl.SSLContext:
        import ssl

        self.check()
        try:
            context = ssl.create_default_context(cafile=self.cafile)
            if self.certfile:
                context.load_cert_chain(self.certfile, self.keyfile)
        except (ssl.SSLError, OSError, ValueError) as err:
            raise StoreError(f"etcd TLS: cannot load {self.cafile}, {self.certfile}, {self.keyfile}: {err}") from None
        return context


def wrap(sock: socket.socket, context: ssl.SSLContext, host: str) -> ssl.SSLSocket:
    import ssl

    try:
        return context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLError as err:
        sock.close()
        raise refused(host, err) from None


def refused(host: str, err: ssl.SSLError) -> StoreError:
    """etcd's refusals in words a person can act on. (With TLS 1.3 the server's
    refusal of the client's certificate comes with the first read, not the handshake.)"""
    import ssl

    if isinstance(err, ssl.SSLCertVerificationError):
        return StoreError(f"etcd at {host}: its certificate is not one the CA file vouches for ({err.verify_message})")
    return StoreError(f"etcd at {host} refused this client ({err.reason or err}): give a certificate "
                      "signed by the cluster's CA (--etcd-certfile, --etcd-keyfile)")


PLAIN_TO_TLS = b"Client sent an HTTP request to an HTTPS server"  # what Go's TLS listener answers plain HTTP with


def speaks_tls(host: str) -> StoreError:
    return StoreError(f"etcd at {host} hangs up on plain HTTP: it speaks TLS, so give its CA and a client "
                      "certificate (--etcd-cafile, --etcd-certfile, --etcd-keyfile)")
