"""A control-plane machine's Kubernetes API server, set up as kubeadm sets one
up: a serving certificate for the node's address (and 127.0.0.1), signed with
the cluster's CA, whose key is given to the control-plane join and kept there,
never to other nodes; an admin's client certificate and kubeconfig beside it;
and the certificate it presents to kubelets (exec, port-forward, logs). The
unit that runs `podnet apiserver` on ADDRESS:6443 is files.py's."""

from __future__ import annotations

from pathlib import Path

from podnet.lab import certificates
from podnet.lab.apiserver import KUBELET_CLIENT, KUBELET_CLIENT_USER, USERS, kubeconfig_text
from podnet.machine import files
from podnet.model.families import host_port

ADMIN = USERS["admin"]


def paths(joining: files.Joining) -> list[Path]:
    """What issue() writes, for join to know the directories it makes."""
    pki = joining.path(files.PKI_DIR)
    return [pki / "apiserver.crt", pki / "apiserver.key", pki / "admin.crt", pki / "admin.key",
            pki / f"{KUBELET_CLIENT}.crt", pki / f"{KUBELET_CLIENT}.key", joining.path(files.KUBECONFIG)]


def issue(joining: files.Joining, ca_keyfile: str) -> list[Path]:
    """The server's, the admin's and the kubelet-client certificates and the admin's kubeconfig, written."""
    assert joining.tls is not None
    authority = certificates.load_authority(Path(joining.tls.cafile), Path(ca_keyfile))
    pki = joining.path(files.PKI_DIR)
    certificates.issue(authority, pki, "apiserver", "kube-apiserver", (*joining.addresses, "127.0.0.1"),
                       dns_names=(joining.name, "localhost"))
    admin = certificates.issue(authority, pki, "admin", ADMIN[0], organizations=ADMIN[1])
    kubelet_client, groups = KUBELET_CLIENT_USER
    certificates.issue(authority, pki, KUBELET_CLIENT, kubelet_client, organizations=groups)
    kubeconfig = joining.path(files.KUBECONFIG)
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    kubeconfig.touch(mode=0o600)
    kubeconfig.write_text(kubeconfig_text(f"podnet-{joining.name}", f"https://{host_port(joining.address, files.API_PORT)}",
                                          Path(joining.tls.cafile), Path(admin.certfile), Path(admin.keyfile),
                                          ADMIN[0]))
    return paths(joining)
