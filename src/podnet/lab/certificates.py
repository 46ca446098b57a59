"""The certificates a cluster lab runs with, from a CA of the lab's own: its API
server's (serving at its addresses and names), its users' (CN the user, O the
groups, as kube-apiserver reads them), and for an etcd lab each member's
(serving clients and peers at its address) and the client certificate podnet's
processes present. What kubeadm makes for a cluster, in miniature: P-256 keys,
valid for a year."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podnet.store.tls import TlsFiles

VALID_FOR = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    path: Path


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    return x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALID_FOR))


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def authority(directory: Path, common_name: str) -> Authority:
    """A self-signed CA, written as ca.crt and ca.key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (_builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, _ = _write(directory, "ca", cert, key)
    return Authority(cert, key, cert_path)


def load_authority(cert_path: Path, key_path: Path) -> Authority:
    """The cluster's CA from its files, the key checked against the certificate."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(f"cannot read the CA from {cert_path} and {key_path}: {err}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ValueError(f"{key_path} is not the key of the CA certificate {cert_path}")
    return Authority(cert, key, cert_path)


def issue(ca: Authority, directory: Path, stem: str, common_name: str, addresses: tuple[str, ...] = (),
          organizations: tuple[str, ...] = (), dns_names: tuple[str, ...] = ()) -> TlsFiles:
    """A certificate signed by the CA, for clients and (given addresses or names)
    serving them: etcd members use theirs both ways, towards their peers."""
    key = ec.generate_private_key(ec.SECP256R1())
    serving = bool(addresses or dns_names)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if serving else [])
    builder = (_builder(_name(common_name, organizations), ca.cert.subject, key.public_key())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
    if serving:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [*(x509.IPAddress(ipaddress.ip_address(a)) for a in addresses), *(x509.DNSName(n) for n in dns_names)]),
            critical=False)
    cert_path, key_path = _write(directory, stem, builder.sign(ca.key, hashes.SHA256()), key)
    return TlsFiles(str(ca.path), str(cert_path), str(key_path))
