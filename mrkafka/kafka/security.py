"""A Kafka client's security settings, from a properties file.

``ClientSecurity.read(FILE)`` reads a Kafka client properties file (``--command-config``, the
file Kafka's own tools take) and gives the same settings to librdkafka
(``confluent_options``), which every client of mrkafka is built on. What Kafka's
tools would read differently is refused, not guessed: a misspelt key that matters, a JKS
store, SSL settings under a plaintext protocol. A ``ClientSecurity`` pickles as the path of
its file, so a secret read from it never travels in a Ray task's arguments: a worker reads
the file again.
"""

from __future__ import annotations

import datetime
import difflib
import os
import re
import ssl
import stat
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mrkafka.errors import BadInputError

__all__ = [
    "ACL_OPERATIONS",
    "MODES",
    "PLAINTEXT",
    "SCRAM_ITERATIONS",
    "ClientSecurity",
    "checked_name",
    "private_dir",
    "read_properties",
    "write_private",
    "with_password",
    "write_properties",
]

#: ``mrkafka kafka up --security``: what the client listener asks of a client.
MODES = ("plaintext", "ssl", "sasl_ssl", "mtls")
#: ``mrkafka acl --operation``: Kafka's ACL operations, as kafka-acls spells them.
ACL_OPERATIONS = (
    "All",
    "Read",
    "Write",
    "Create",
    "Delete",
    "Alter",
    "Describe",
    "ClusterAction",
    "DescribeConfigs",
    "AlterConfigs",
    "IdempotentWrite",
)
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_LOGIN_MODULES = {
    "org.apache.kafka.common.security.scram.ScramLoginModule": ("SCRAM-SHA-256", "SCRAM-SHA-512"),
    "org.apache.kafka.common.security.plain.PlainLoginModule": ("PLAIN",),
}
#: The keys mrkafka reads; ``_TOLERATED`` ones it leaves to the client's defaults, with a warning.
_KEYS = {
    "security.protocol",
    "sasl.mechanism",
    "sasl.jaas.config",
    "ssl.truststore.location",
    "ssl.truststore.type",
    "ssl.keystore.location",
    "ssl.keystore.type",
    "ssl.key.password",
    "ssl.key.location",
    "ssl.certificate.location",
    "ssl.endpoint.identification.algorithm",
    "ssl.keystore.password",
    "ssl.truststore.password",
}
#: Scram iterations for credentials mrkafka makes (Kafka's own default is 4096).
SCRAM_ITERATIONS = 8192


# -- properties files ---------------------------------------------------------------------------


def read_properties(path: str | Path) -> dict[str, str]:
    """A Java properties file's keys and values (comments, ``key=value``, ``key: value``, and
    lines continued with a trailing backslash)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    values: dict[str, str] = {}
    logical = ""
    for raw in text.splitlines():
        line = raw.lstrip() if not logical else raw.strip()
        if not logical and (not line or line[0] in "#!"):
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            logical += line[:-1]
            continue
        logical += line
        key, value = _split(logical)
        values[key] = value
        logical = ""
    return values


def _split(line: str) -> tuple[str, str]:
    """``key=value``, ``key: value`` or ``key value``."""
    match = re.match(r"((?:[^\s=:\\]|\\.)+)\s*[=:]?\s*(.*)$", line)
    return (match.group(1), match.group(2).strip()) if match else (line, "")


def write_properties(path: Path, values: dict[str, str]) -> Path:
    """Write a properties file readable by its owner only (it may hold a password)."""
    write_private(path, "".join(f"{key}={value}\n" for key, value in values.items()).encode())
    return path


def _jaas(value: str, source: str) -> tuple[str, dict[str, str]]:
    """The login module and options of a ``sasl.jaas.config`` value."""
    match = re.match(r"\s*([\w.$]+)\s+(required|requisite|sufficient|optional)\s*(.*?)\s*;?\s*$", value, re.S)
    if match is None:
        raise BadInputError(f"{source}: sasl.jaas.config is not 'LoginModule required username=\"...\" ...;'")
    options = {}
    for key, quoted, bare in re.findall(r'([\w.]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;]+))', match.group(3)):
        options[key] = re.sub(r"\\(.)", r"\1", quoted) if quoted or not bare else bare
    return match.group(1), options


# -- client settings ----------------------------------------------------------------------------


def _reread(source: str) -> ClientSecurity:
    return ClientSecurity.read(source, warn=False)


@dataclass(frozen=True)
class ClientSecurity:
    """How a client connects: the protocol, SASL credentials, TLS files (see the module docstring)."""

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    key_password: str | None = field(default=None, repr=False)
    check_hostname: bool = True
    #: The properties file these settings came from.
    source: str | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if self.source is not None:  # the secrets stay in the file; the worker reads it
            return _reread, (self.source,)
        return ClientSecurity, tuple(getattr(self, f.name) for f in fields(self))

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def principal(self) -> str:
        """Who the broker will take this client for, as far as the settings say."""
        if self.sasl:
            return f"User:{self.username}"
        if self.certfile:
            return f"the certificate in {self.certfile}"
        return "User:ANONYMOUS"

    def refused(self, reason: str) -> str:
        """Why the broker refused this client, from the TLS alert or SASL error text ``reason``
        (librdkafka's words for it), for an ``AuthenticationError``."""
        low = reason.lower().replace("_", " ")
        if "certificate verify failed" in low:
            return "the broker's certificate is not trusted (is ssl.truststore.location the cluster's CA?)"
        if "wrong version number" in low or "record layer failure" in low or "packet length too long" in low:
            return "the broker does not speak TLS there (security.protocol)"
        if "alert" in low and "certificate" in low:
            return f"the broker refused the client certificate: {self._certificate_problem()}"
        if self.sasl:
            detail = re.sub(r"^.*SASL authentication error: |^\[Error \d+\] \w+: |\s*\(after \d+ms.*$", "", reason)
            return f"{self.principal} ({self.mechanism}) was refused: {detail.strip() or reason}"
        return reason

    def _certificate_problem(self) -> str:
        from cryptography import x509  # only to explain a refusal: not on every client's import

        if not self.certfile:
            return "none was given (ssl.keystore.location)"
        cert = x509.load_pem_x509_certificate(Path(self.certfile).read_bytes())
        now = datetime.datetime.now(datetime.timezone.utc)
        if cert.not_valid_after_utc < now:
            return f"it expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        if cert.not_valid_before_utc > now:
            return f"it is valid only from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        return f"is {self.certfile} signed by the cluster's CA?"

    @classmethod
    def read(cls, path: str | Path, warn: bool = True) -> ClientSecurity:
        """The settings of a properties file; one clear ``BadInputError`` for what Kafka's tools
        would read differently. Keys mrkafka does not use are warned about on stderr."""
        source = str(path)
        values = read_properties(path)
        for key in sorted(set(values) - _KEYS):
            close = difflib.get_close_matches(key, _KEYS, n=1, cutoff=0.8)
            if close:
                raise BadInputError(f"{source}: unknown setting {key!r} (did you mean {close[0]!r}?)")
            if warn:
                print(f"mrkafka: warning: {source}: ignoring {key!r} (mrkafka does not use it)", file=sys.stderr)
        protocol = values.get("security.protocol", "PLAINTEXT").upper()
        if protocol not in PROTOCOLS:
            raise BadInputError(f"{source}: security.protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        tls, sasl = protocol in ("SSL", "SASL_SSL"), protocol.startswith("SASL_")
        for key in values:
            if key.startswith("ssl.") and not tls or key.startswith("sasl.") and not sasl:
                raise BadInputError(f"{source}: {key} is set but security.protocol is {protocol}")
        for which in ("truststore", "keystore"):
            store = values.get(f"ssl.{which}.type", "PEM").upper()
            if store != "PEM":
                raise BadInputError(f"{source}: ssl.{which}.type={store} is not supported; use PEM files")
        settings: dict[str, Any] = {"protocol": protocol, "source": source}
        if sasl:
            mechanism = values.get("sasl.mechanism", "").upper()
            if mechanism not in MECHANISMS:
                raise BadInputError(
                    f"{source}: sasl.mechanism must be one of {', '.join(MECHANISMS)}, not {mechanism or 'unset'!r}"
                )
            if "sasl.jaas.config" not in values:
                raise BadInputError(f"{source}: {protocol} needs sasl.jaas.config with a username and password")
            module, options = _jaas(values["sasl.jaas.config"], source)
            if mechanism not in _LOGIN_MODULES.get(module, ()):
                raise BadInputError(f"{source}: sasl.jaas.config's {module} does not do {mechanism}")
            if not options.get("username") or "password" not in options:
                raise BadInputError(f"{source}: sasl.jaas.config needs username and password")
            settings.update(mechanism=mechanism, username=options["username"], password=options["password"])
        if tls:
            algorithm = values.get("ssl.endpoint.identification.algorithm", "https")
            keyfile = values.get("ssl.key.location") or values.get("ssl.keystore.location")
            certfile = values.get("ssl.certificate.location") or values.get("ssl.keystore.location")
            settings.update(
                cafile=values.get("ssl.truststore.location"),
                certfile=certfile,
                keyfile=keyfile,
                key_password=values.get("ssl.key.password"),
                check_hostname=algorithm.lower() == "https",
            )
            for name in ("cafile", "certfile", "keyfile"):
                if settings[name] and not Path(settings[name]).is_file():
                    raise BadInputError(f"{source}: no file {settings[name]}")
            if bool(certfile) != bool(keyfile):
                raise BadInputError(f"{source}: a client certificate needs its key (ssl.keystore.location)")
        security = cls(**settings)
        security.ssl_context()  # the files must load
        return security

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=self.cafile)
            context.check_hostname = self.check_hostname
            if self.certfile:
                context.load_cert_chain(self.certfile, self.keyfile, self.key_password)
        except (ssl.SSLError, OSError) as exc:
            raise BadInputError(f"{self.source}: cannot load the TLS files: {exc}") from None
        return context

    def confluent_options(self) -> dict[str, Any]:
        """librdkafka settings for a confluent-kafka client."""
        options: dict[str, Any] = {"security.protocol": self.protocol}
        if self.tls:
            options["ssl.endpoint.identification.algorithm"] = "https" if self.check_hostname else "none"
            if self.cafile:
                options["ssl.ca.location"] = self.cafile
            if self.certfile:
                options.update({"ssl.certificate.location": self.certfile, "ssl.key.location": self.keyfile})
            if self.key_password:
                options["ssl.key.password"] = self.key_password
        if self.sasl:
            options.update(
                {"sasl.mechanism": self.mechanism, "sasl.username": self.username, "sasl.password": self.password}
            )
        return options


PLAINTEXT = ClientSecurity()


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a file readable by its owner only (a key, a password), whatever its
    mode was; a link in its place is refused, not followed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise BadInputError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, 0o600)
        out.write(data)


def private_dir(path: Path, what: str = "directory") -> Path:
    """``path`` as a directory only its owner may enter (0700), made if need be, whatever its
    mode was; a link in its place is refused, not followed, and so is a directory others share
    (sticky, as ``/tmp``), whose mode is not this program's to change. ``what``: how an error
    names it."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise BadInputError(f"{what} {path} cannot be a private directory: {exc.strerror}") from None
    try:
        if os.fstat(fd).st_mode & stat.S_ISVTX:
            raise BadInputError(f"{what} {path} is a directory others share (as /tmp is): give one of its own")
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return path


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,248}")


def checked_name(name: str, what: str) -> str:
    """``name`` if it can name a principal (``User:NAME``) and a file: letters, digits, ``.``,
    ``_`` and ``-``, not starting with a dot or a dash; a ``BadInputError`` otherwise."""
    if not _NAME.fullmatch(name):
        raise BadInputError(
            f"{what} {name!r} is not a valid name: use letters, digits, '.', '_' and '-' "
            "(not first), at most 249 characters"
        )
    return name


def with_password(path: str | Path, password: str) -> bytes:
    """The properties file at ``path`` with ``password`` in its ``sasl.jaas.config`` (the
    rest as it was read): what a user's settings become when their password changes."""
    values = read_properties(path)
    module, options = _jaas(values["sasl.jaas.config"], str(path))

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    options["password"] = password
    values["sasl.jaas.config"] = f"{module} required " + " ".join(f"{k}={quoted(v)}" for k, v in options.items()) + ";"
    return "".join(f"{key}={value}\n" for key, value in values.items()).encode()
