"""A cluster lab's Kubernetes API server, published as kind publishes its own: on
the machine's 127.0.0.1 (a socket the lab opens in the root namespace, which
changes nothing there, and hands to the server and every restart of it), and on
the fabric's address, port 6443, for what runs in the lab.

Its certificates come from the lab's CA: the server's names its addresses; the
admin's (group system:masters) and the viewer's (podnet:view) are what the lab's
kubeconfigs carry; with its kubelet-client one (apiserver-kubelet-client, as
kubeadm names it) it reaches the nodes' kubelets for exec, port-forward and
logs. `lab up` writes the admin's kubeconfig into the lab's directory; `podnet
lab kubeconfig` prints either."""

from __future__ import annotations

import base64
import http.client
import ipaddress
import socket
import ssl
import time
from pathlib import Path

import yaml

from podnet.errors import LabError
from podnet.lab import processes
from podnet.lab.plan import ClusterPlan
from podnet.lab.spec import ClusterSpec
from podnet.lab.state import LabRecord

PORT = 6443
USERS = {  # who a kubeconfig can be: its certificate's CN and Os
    "admin": ("kubernetes-admin", ("system:masters",)),
    "view": ("podnet-viewer", ("podnet:view",)),
}
KUBELET_CLIENT = "apiserver-kubelet-client"  # the certificate it reaches kubelets with, as kubeadm names it
KUBELET_CLIENT_USER = ("kube-apiserver-kubelet-client", ("system:masters",))
START_TIMEOUT = 15.0


def issue_certificates(ca: object, record: LabRecord, plan: ClusterPlan, spec: ClusterSpec) -> None:
    from podnet.lab import certificates

    kubernetes_ip = str(next(ipaddress.ip_network(str(spec.service_subnet)).hosts()))
    names = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             f"kubernetes.default.svc.{spec.dns_domain}")
    certificates.issue(ca, record.pki, "apiserver", "kube-apiserver",  # type: ignore[arg-type]
                       ("127.0.0.1", _fabric_ip(plan), kubernetes_ip), dns_names=names)
    for stem, (user, groups) in USERS.items():
        certificates.issue(ca, record.pki, stem, user, organizations=groups)  # type: ignore[arg-type]
    user, groups = KUBELET_CLIENT_USER
    certificates.issue(ca, record.pki, KUBELET_CLIENT, user, organizations=groups)  # type: ignore[arg-type]


def start(record: LabRecord, plan: ClusterPlan) -> None:
    """The server under the lab's supervisor; returns once it answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        record.apiserver = f"127.0.0.1:{sock.getsockname()[1]}"
        record.save()
        pki = record.pki
        processes.start(plan.fabric_namespace, [
            "podnet", "apiserver", "--store", record.store_inside, "--listen", f"{_fabric_ip(plan)}:{PORT}",
            "--listen-fd", str(sock.fileno()), "--tls-cert-file", str(pki / "apiserver.crt"),
            "--tls-private-key-file", str(pki / "apiserver.key"), "--client-ca-file", str(pki / "ca.crt"),
            *kubelet_client_flags(pki, pki / "ca.crt")],
            record.log_path("apiserver"), supervised=True, pass_fds=(sock.fileno(),))
    finally:
        sock.close()  # the server's copy serves on
    wait_ready(record)
    kubeconfig_path(record).write_text(kubeconfig(record))
    kubeconfig_path(record).chmod(0o600)


def kubelet_client_flags(pki: Path, cafile: Path) -> list[str]:
    """`podnet apiserver`'s flags for reaching kubelets, with the certificate issued here."""
    return ["--kubelet-client-certificate", str(pki / f"{KUBELET_CLIENT}.crt"),
            "--kubelet-client-key", str(pki / f"{KUBELET_CLIENT}.key"), "--kubelet-certificate-authority", str(cafile)]


def wait_ready(record: LabRecord, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if _get(record, "/readyz") == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise LabError(f"the lab's API server did not answer on {record.apiserver}; see its log "
                           f"({record.log_path('apiserver')})")
        time.sleep(0.05)


def _get(record: LabRecord, path: str) -> int:
    context = ssl.create_default_context(cafile=str(record.pki / "ca.crt"))
    context.load_cert_chain(str(record.pki / "admin.crt"), str(record.pki / "admin.key"))
    host, port = record.apiserver.rsplit(":", 1)
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def kubeconfig_path(record: LabRecord) -> Path:
    return record.directory / "kubeconfig"


def kubeconfig(record: LabRecord, user: str = "admin") -> str:
    """A kubeconfig with everything in it (as `kind get kubeconfig` prints), for
    context podnet-<lab>."""
    if not record.apiserver:
        raise LabError(f"lab {record.name} has no API server")
    return kubeconfig_text(f"podnet-{record.name}", f"https://{record.apiserver}", record.pki / "ca.crt",
                           record.pki / f"{user}.crt", record.pki / f"{user}.key", USERS[user][0])


def kubeconfig_text(name: str, server: str, cafile: Path, certfile: Path, keyfile: Path, who: str) -> str:
    """One cluster, one user, one context, all named `name`, the files' contents inline."""
    def data(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": data(cafile)}}],
        "users": [{"name": f"{who}@{name}", "user": {"client-certificate-data": data(certfile),
                                                    "client-key-data": data(keyfile)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{who}@{name}"}}],
    }
    return yaml.safe_dump(config, sort_keys=False)


def _fabric_ip(plan: ClusterPlan) -> str:
    return plan.fabric_address.split("/")[0]
