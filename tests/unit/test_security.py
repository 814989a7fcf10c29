"""Client properties files, the cluster's certificates, and why a broker refused a client (no Kafka)."""

from __future__ import annotations

import datetime
import pickle
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from mrkafka.devtools.certificates import CertificateAuthority
from mrkafka.devtools.launcher import Cluster
from mrkafka.errors import BadInputError
from mrkafka.kafka.security import ClientSecurity, read_properties

SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"


def props(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "client.properties"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("tls")).create()


def test_properties_are_read_as_java_reads_them(tmp_path: Path) -> None:
    path = props(
        tmp_path,
        "# a comment\n! another\nsecurity.protocol = SASL_SSL\nsasl.mechanism: SCRAM-SHA-512\n"
        f'sasl.jaas.config={SCRAM} required \\\n    username="alice" \\\n    password="p=w;d";\n'
        "  client.id  mine\n\n",
    )
    assert read_properties(path) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": f'{SCRAM} required username="alice" password="p=w;d";',
        "client.id": "mine",
    }


def test_a_sasl_file_gives_librdkafka_the_login_kafkas_tools_read(tmp_path: Path, ca, capsys) -> None:
    path = props(
        tmp_path,
        f"security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nssl.truststore.type=PEM\n"
        f"ssl.truststore.location={ca.cert}\nclient.id=x\n"
        f'sasl.jaas.config={SCRAM} required username="alice" password="s3cr\\"et";\n',
    )
    security = ClientSecurity.read(path)
    assert "ignoring 'client.id'" in capsys.readouterr().err
    rd = security.confluent_options()
    assert rd["security.protocol"] == "SASL_SSL" and rd["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (rd["sasl.username"], rd["sasl.password"], rd["ssl.ca.location"]) == ("alice", 's3cr"et', str(ca.cert))
    assert rd["ssl.endpoint.identification.algorithm"] == "https"
    assert isinstance(security.ssl_context(), ssl.SSLContext)
    assert "s3cr" not in repr(security)


def test_settings_travel_as_the_path_of_their_file(tmp_path: Path, ca) -> None:
    path = props(
        tmp_path,
        f"security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nssl.truststore.location={ca.cert}\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="u" password="hunter22";\n',
    )
    security = ClientSecurity.read(path)
    data = pickle.dumps(security)
    assert b"hunter22" not in data and str(path).encode() in data
    assert pickle.loads(data) == security


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("securty.protocol=SSL\n", "unknown setting 'securty.protocol' (did you mean 'security.protocol'?)"),
        ("security.protocol=TLS\n", "security.protocol must be one of"),
        ("ssl.truststore.location=/etc/hostname\n", "ssl.truststore.location is set but security.protocol is "),
        ("security.protocol=SSL\nssl.truststore.type=JKS\n", "ssl.truststore.type=JKS is not supported"),
        ("security.protocol=SASL_SSL\n", "sasl.mechanism must be one of"),
        ("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n", "needs sasl.jaas.config"),
        (
            f"security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.jaas.config={SCRAM} required user=a;\n",
            "ScramLoginModule does not do PLAIN",
        ),
        ("security.protocol=SSL\nssl.truststore.location=/no/such/ca.pem\n", "no file /no/such/ca.pem"),
    ],
)
def test_what_kafka_would_read_otherwise_is_refused(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(BadInputError) as raised:
        ClientSecurity.read(props(tmp_path, text))
    assert error in str(raised.value)


def test_issued_certificates_verify_against_the_ca_only(tmp_path: Path, ca) -> None:
    server = ca.issue("broker", tmp_path / "broker.pem", server=True)
    other = CertificateAuthority(tmp_path / "other").create()
    for authority, trusted in ((ca, True), (other, False)):
        cert = x509.load_pem_x509_certificate(server.read_bytes())
        issuer = x509.load_pem_x509_certificate(authority.cert.read_bytes())
        try:
            cert.verify_directly_issued_by(issuer)
            verified = True
        except (ValueError, InvalidSignature):
            verified = False
        assert verified is trusted
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert server.stat().st_mode & 0o777 == 0o600 and ca.key.stat().st_mode & 0o777 == 0o600


def test_a_refused_certificate_is_explained(tmp_path: Path, ca) -> None:
    alert = "[SSL: SSLV3_ALERT_BAD_CERTIFICATE] ssl/tls alert bad certificate (_ssl.c:2580)"
    week_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=7)
    expired = ca.issue("old", tmp_path / "old.pem", days=1, not_before=week_ago)
    valid = ca.issue("new", tmp_path / "new.pem")
    without = ClientSecurity("SSL", cafile=str(ca.cert))
    assert without.refused(alert).endswith("none was given (ssl.keystore.location)")
    old = ClientSecurity("SSL", cafile=str(ca.cert), certfile=str(expired), keyfile=str(expired))
    assert f"it expired on {week_ago + datetime.timedelta(days=1):%Y-%m-%d}" in old.refused(alert)
    new = ClientSecurity("SSL", cafile=str(ca.cert), certfile=str(valid), keyfile=str(valid))
    assert "signed by the cluster's CA?" in new.refused(alert)
    verify = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate"
    assert "the broker's certificate is not trusted" in new.refused(verify)
    sasl = ClientSecurity("SASL_SSL", "SCRAM-SHA-256", "bob", "pw")
    text = "[Error 58] SaslAuthenticationFailed: Authentication failed during authentication due to invalid credentials"
    assert sasl.refused(text) == "User:bob (SCRAM-SHA-256) was refused: " + text.split(": ", 1)[1]


def test_a_client_certificate_comes_with_its_settings(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "k", security="mtls")
    cluster.ca.create()
    pem = cluster.issue_certificate("carol")
    security = ClientSecurity.read(pem.with_suffix(".properties"))
    assert (security.protocol, security.certfile, security.cafile) == ("SSL", str(pem), str(cluster.ca.cert))
    assert security.ssl_context() is not None  # key and certificate load together


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([], "give one resource: --topic, --group, --transactional-id or --cluster"),
        (["--topic", "t", "--group", "g"], "give one resource"),
        (["--topic", "t", "--principal", "alice"], "--principal must be TYPE:NAME"),
    ],
)
def test_an_acl_names_one_resource_and_a_principal_type(args: list[str], error: str) -> None:
    from click.testing import CliRunner

    from mrkafka.cli import main

    result = CliRunner().invoke(
        main,
        ["acl", "add", "--principal", "User:alice", "--operation", "Read", *args, "--bootstrap-servers", "127.0.0.1:1"],
    )
    assert result.exit_code == 2 and error in result.stderr and result.stderr.count("\n") == 1, result.stderr
