"""`podnet apiserver`: the flags of the cluster's Kubernetes API server."""

from __future__ import annotations

import click

from podnet.cli.etcdflags import etcd_tls_options, tls_files


def _address(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{text!r} is not HOST:PORT", param_hint="--listen")
    return host.strip("[]") or "0.0.0.0", int(port)


@click.command("apiserver")
@click.option("--store", "store_path", required=True,
              help="The cluster's store: a SQLite file, or etcd://IP:PORT[,IP:PORT...].")
@etcd_tls_options
@click.option("--listen", "listen", multiple=True, metavar="HOST:PORT",
              help="Serve here (repeatable) [0.0.0.0:6443 without --listen or --listen-fd].")
@click.option("--listen-fd", "listen_fds", multiple=True, type=int, metavar="FD",
              help="Serve on this inherited, bound socket (repeatable): a lab opens one on the machine's 127.0.0.1.")
@click.option("--tls-cert-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The server's certificate (it names the addresses clients use).")
@click.option("--tls-private-key-file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--client-ca-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The CA whose client certificates are users: CN the user, O the groups.")
@click.option("--kubelet-client-certificate", type=click.Path(exists=True, dir_okay=False),
              help="What the server presents to kubelets, for a pod's exec, attach, port-forward and logs.")
@click.option("--kubelet-client-key", type=click.Path(exists=True, dir_okay=False))
@click.option("--kubelet-certificate-authority", type=click.Path(exists=True, dir_okay=False),
              help="The CA kubelets' serving certificates are checked against (they name the node's address).")
def apiserver(store_path: str, etcd_cafile: str | None, etcd_certfile: str | None, etcd_keyfile: str | None,
              listen: tuple[str, ...], listen_fds: tuple[int, ...], tls_cert_file: str, tls_private_key_file: str,
              client_ca_file: str, kubelet_client_certificate: str | None, kubelet_client_key: str | None,
              kubelet_certificate_authority: str | None) -> None:
    """Serve the cluster's Kubernetes API, so kubectl and client libraries drive it."""
    from podnet.apiserver.server import ServerOptions, serve
    from podnet.cli.agent import run_as_daemon
    from podnet.store.location import open_store, with_tls

    kubelet_files = (kubelet_client_certificate, kubelet_client_key, kubelet_certificate_authority)
    if any(kubelet_files) and not all(kubelet_files):
        raise click.UsageError("--kubelet-client-certificate, --kubelet-client-key and "
                               "--kubelet-certificate-authority go together")
    addresses = tuple(_address(a) for a in listen) or (() if listen_fds else (("0.0.0.0", 6443),))
    options = ServerOptions(tls_cert_file, tls_private_key_file, client_ca_file, addresses, listen_fds,
                            *kubelet_files)
    stop = run_as_daemon()
    store = open_store(with_tls(store_path, tls_files(etcd_cafile, etcd_certfile, etcd_keyfile)))
    try:
        serve(store, options, stop)
    finally:
        store.close()
