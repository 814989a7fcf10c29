"""The development cluster's TLS material and SCRAM credentials.

``CertificateAuthority`` makes the cluster's CA and issues certificates (the brokers', the
admin's, a user's for mutual TLS) as PEM files that Kafka (``ssl.keystore.type=PEM``) and
Python both read: the private key (PKCS#8) followed by the certificate, mode 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mrkafka.kafka.security import private_dir, write_private

__all__ = ["CertificateAuthority"]

_DAY = datetime.timedelta(days=1)


class CertificateAuthority:
    """The cluster's CA in ``directory`` (``ca.pem``, and ``ca-key.pem`` readable by its owner only)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @property
    def cert(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def key(self) -> Path:
        return self.directory / "ca-key.pem"

    def exists(self) -> bool:
        return self.cert.exists() and self.key.exists()

    def create(self, name: str = "mrkafka CA", days: int = 3650) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + days * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        cert = builder.sign(key, hashes.SHA256())
        private_dir(self.directory)
        write_private(self.key, _pem_key(key))
        self.cert.write_bytes(_pem_cert(cert))
        return self

    def issue(
        self,
        name: str,
        path: Path,
        *,
        server: bool = False,
        days: int = 365,
        not_before: datetime.datetime | None = None,
    ) -> Path:
        """A key and certificate for ``CN=name`` signed by this CA, in one PEM file at ``path``
        (mode 0600), valid ``days`` from ``not_before`` (default: a day ago). A server's certificate
        names 127.0.0.1 and localhost."""
        ca_key = serialization.load_pem_private_key(self.key.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or datetime.datetime.now(datetime.timezone.utc) - _DAY
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + days * _DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if server:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        write_private(path, _pem_key(key) + _pem_cert(cert))
        return path


def _pem_key(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: Any) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
