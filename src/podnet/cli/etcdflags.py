"""flannel's etcd TLS flags, shared by every command that opens a real node's store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from podnet.store.tls import TlsFiles

FILE = click.Path(exists=True, dir_okay=False, resolve_path=True)


def etcd_tls_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for flag, help_text in reversed((
            ("--etcd-cafile", "The CA that signed etcd's certificates (TLS to etcd)."),
            ("--etcd-certfile", "This client's certificate, signed by the cluster's CA."),
            ("--etcd-keyfile", "The key of --etcd-certfile."))):
        command = click.option(flag, type=FILE, help=help_text)(command)
    return command


def tls_files(cafile: str | None, certfile: str | None, keyfile: str | None) -> TlsFiles | None:
    """The three flags as one value; none given means plain HTTP."""
    if not (cafile or certfile or keyfile):
        return None
    if not cafile:
        raise click.UsageError("--etcd-certfile and --etcd-keyfile need --etcd-cafile too")
    if bool(certfile) != bool(keyfile):
        raise click.UsageError("--etcd-certfile and --etcd-keyfile go together")
    return TlsFiles(cafile, certfile or "", keyfile or "")
