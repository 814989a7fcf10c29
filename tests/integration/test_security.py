"""Secured brokers, one per mode (ssl, sasl_ssl, mtls): logins, ACLs, Kafka's own tools with the
same properties files, and a stream run as an application user holding only the documented ACLs."""

from __future__ import annotations

import contextlib
import datetime
import re
import shlex
import stat
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import KafkaException, Producer

from mrkafka.batch import run_batch
from mrkafka.cli import main
from mrkafka.devtools.certificates import CertificateAuthority
from mrkafka.devtools.launcher import ADMIN, Cluster
from mrkafka.devtools.tools import tool_command
from mrkafka.job import JobSpec, load_job
from mrkafka.kafka.security import ClientSecurity, write_properties
from mrkafka.settings import BatchSettings, StreamSettings
from mrkafka.stream import run_stream
from tests.helpers import free_ports, messy_corpus, read_parts, real_text

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WORDCOUNT = ROOT / "jobs" / "wordcount.py"
SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"


@dataclass
class Secured:
    """A secured broker, its admin's settings, and the principals a test makes."""

    cluster: Cluster
    tmp: Path

    @property
    def mode(self) -> str:
        return self.cluster.security

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap_servers

    @property
    def admin(self) -> Path:
        return self.cluster.admin_config

    def cli(self, *args: str, config: Path | None = None) -> tuple[int, bytes, str]:
        """``mrkafka ARGS`` against this broker, as the principal of ``config`` (default: the admin)."""
        given = ["--bootstrap-servers", self.bootstrap, "--command-config", str(config or self.admin)]
        result = CliRunner().invoke(main, [*args, *given])
        return result.exit_code, result.stdout_bytes, result.stderr

    def principal(self, name: str) -> Path:
        """The client settings of a new principal ``User:name``: a SCRAM user under sasl_ssl
        (made with ``mrkafka user add``), a certificate from ``mrkafka kafka cert`` otherwise."""
        if self.mode == "sasl_ssl":
            password = self.tmp / f"{name}.password"
            password.write_text(f"pw-{uuid.uuid4().hex}\n")
            code, _, err = self.cli("user", "add", name, "--password-file", str(password))
            assert code == 0, err
            jaas = f'{SCRAM} required username="{name}" password="{password.read_text().strip()}";'
            settings = {"sasl.mechanism": "SCRAM-SHA-512", "sasl.jaas.config": jaas}
            return write_properties(self.tmp / f"{name}.properties", self.cluster.client_properties(**settings))
        result = CliRunner().invoke(main, ["kafka", "cert", name, "--data-dir", str(self.cluster.data_dir)])
        assert result.exit_code == 0, result.stderr
        return Path(result.stdout.strip())

    def allow(self, principal: str, *binding: str) -> None:
        code, _, err = self.cli("acl", "add", "--principal", f"User:{principal}", *binding)
        assert code == 0, err


MODES = ("ssl", "sasl_ssl", "mtls")


@contextlib.contextmanager
def _started(tmp_path_factory, security: str, brokers: int = 1) -> Iterator[Cluster]:
    cluster = Cluster(
        tmp_path_factory.mktemp(f"kafka-{security}") / "data", brokers, free_ports(brokers), security=security
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module", params=MODES)
def secured(request, tmp_path_factory):
    """A secured cluster per mode; mtls's has three nodes, so that every test of that mode also
    goes through authenticated traffic between brokers."""
    with _started(tmp_path_factory, request.param, brokers=3 if request.param == "mtls" else 1) as cluster:
        yield Secured(cluster, cluster.data_dir.parent)


@pytest.fixture
def name(request) -> str:
    return f"{re.sub(r'[^A-Za-z0-9]+', '-', request.node.originalname)[:40]}-{uuid.uuid4().hex[:6]}"


def text_lines(count: int) -> list[bytes]:
    """Lines of real text that Java's console tools carry unchanged (UTF-8, no carriage returns)."""
    lines = []
    for line in real_text(1 << 20).split(b"\n"):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if line.strip() and b"\r" not in line:
            lines.append(line)
    return lines[:count]


def java(main_class: str, secured: Secured, config: Path, *args: str, data: bytes = b"") -> bytes:
    cmd = tool_command(main_class, "--bootstrap-server", secured.bootstrap, "--command-config", str(config), *args)
    return subprocess.run(cmd, input=data, capture_output=True, check=True, timeout=120).stdout


def test_a_user_produces_and_consumes_and_kafka_tools_share_its_settings(secured: Secured, name: str) -> None:
    assert secured.cli("topic", "create", name, "--partitions", "2")[0] == 0
    alice = secured.principal(f"alice-{name}")
    secured.allow(f"alice-{name}", "--operation", "Read", "--operation", "Write", "--topic", name)
    secured.allow(f"alice-{name}", "--operation", "Read", "--group", f"console-{name}")
    ours, theirs = text_lines(300), [b"java %d: " % i + line for i, line in enumerate(text_lines(200))]
    (secured.tmp / f"{name}.txt").write_bytes(b"\n".join(ours) + b"\n")
    code, _, err = secured.cli("produce", "--topic", name, "--input", str(secured.tmp / f"{name}.txt"), config=alice)
    assert code == 0, err
    read = java(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        secured,
        alice,
        "--topic",
        name,
        "--from-beginning",
        "--max-messages",
        str(len(ours)),
        "--timeout-ms",
        "30000",
        "--group",
        f"console-{name}",
    )
    assert Counter(read.splitlines()) == Counter(ours)
    java("org.apache.kafka.tools.ConsoleProducer", secured, alice, "--topic", name, data=b"\n".join(theirs) + b"\n")
    code, out, err = secured.cli(
        "consume",
        "--topic",
        name,
        "--from-beginning",
        "--max-messages",
        str(len(ours) + len(theirs)),
        "--timeout-ms",
        "20000",
        config=alice,
    )
    assert code == 0, err
    assert Counter(out.splitlines()) == Counter(ours + theirs)
    # `mrkafka kafka tool` gives Kafka's tools the cluster's address and its admin's settings
    tool = [sys.executable, "-m", "mrkafka.cli", "kafka", "tool", "--data-dir", str(secured.cluster.data_dir)]
    shown = subprocess.run([*tool, "kafka-topics", "--describe", "--topic", name], capture_output=True, text=True)
    assert shown.returncode == 0 and f"Topic: {name}\tTopicId:" in shown.stdout, shown.stderr


def test_a_plaintext_client_is_refused(secured: Secured) -> None:
    result = CliRunner().invoke(main, ["topic", "list", "--bootstrap-servers", secured.bootstrap])
    assert result.exit_code == 10
    first = secured.bootstrap.split(",")[0]  # the first broker that answers says why
    assert result.stderr == (
        f"mrkafka: error: authentication failed at {first}: the broker expects TLS; "
        "set security.protocol in the --command-config file\n"
    )


def test_a_broker_of_another_ca_is_not_trusted(secured: Secured, name: str) -> None:
    other = CertificateAuthority(secured.tmp / f"other-{name}").create()
    settings = dict(line.split("=", 1) for line in secured.admin.read_text().splitlines())
    settings["ssl.truststore.location"] = str(other.cert)
    config = write_properties(secured.tmp / f"{name}.properties", settings)
    code, _, err = secured.cli("topic", "list", config=config)
    assert code == 10 and "the broker's certificate is not trusted" in err and err.count("\n") == 1


def test_wrong_credentials_are_refused(secured: Secured, name: str) -> None:
    """sasl_ssl: a wrong password, an unknown user and a deleted one; ssl and mtls: a certificate of another CA,
    an expired one, and none (ssl lets a client without a certificate the broker's CA signed in
    as User:ANONYMOUS, which no ACL allows)."""
    refused: list[tuple[Path, str]] = []
    if secured.mode == "sasl_ssl":
        good = secured.principal(f"bob-{name}").read_text()
        wrong = re.sub(r'password="[^"]*"', 'password="wrong"', good)
        unknown = re.sub(r'username="[^"]*"', f'username="nobody-{name}"', good)
        deleted = secured.principal(f"dave-{name}")  # a user that existed, deleted with `mrkafka user delete`
        assert f"dave-{name}\tSCRAM-SHA-512" in secured.cli("user", "list")[1].decode().splitlines()
        assert secured.cli("user", "delete", f"dave-{name}")[0] == 0
        assert f"dave-{name}\t" not in secured.cli("user", "list")[1].decode()
        assert secured.cli("user", "delete", f"dave-{name}")[0] == 2
        for label, text in (("wrong", wrong), ("unknown", unknown), ("deleted", deleted.read_text())):
            (secured.tmp / f"{label}-{name}.properties").write_text(text)
            refused.append((secured.tmp / f"{label}-{name}.properties", "(SCRAM-SHA-512) was refused: "))
    else:
        other = CertificateAuthority(secured.tmp / f"other-{name}").create()
        week_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=7)
        certs = {
            "other": other.issue("mallory", secured.tmp / f"other-{name}.pem"),
            "expired": secured.cluster.ca.issue("old", secured.tmp / f"old-{name}.pem", days=1, not_before=week_ago),
        }
        reasons = {"other": f"is {certs['other']} signed by the cluster's CA?", "expired": "it expired on"}
        certs["none"] = None
        reasons["none"] = "none was given (ssl.keystore.location)"
        for label, pem in certs.items():
            extra = {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(pem)} if pem else {}
            config = write_properties(
                secured.tmp / f"{label}-{name}.properties", secured.cluster.client_properties(**extra)
            )
            reason = f"the broker refused the client certificate: {reasons[label]}"
            if secured.mode == "ssl" and label != "expired":
                # Asked for, not required: without one, or with one the broker's CA list does not
                # name (a TLS client then sends none), the client is User:ANONYMOUS.
                reason = f"not authorized to READ topic {name} "
            refused.append((config, reason))
    secured.cli("topic", "create", name)
    for config, reason in refused:
        code, _, err = secured.cli("consume", "--topic", name, "--timeout-ms", "1000", config=config)
        assert code in (10, 11) and reason in err and err.count("\n") == 1, (config, err)


def test_an_existing_user_is_changed_only_on_purpose(secured: Secured, name: str) -> None:
    """``user add`` refuses a user that exists, the admin too, unless --update; the admin's own
    password changes together with its settings file, which keeps working."""
    if secured.mode != "sasl_ssl":
        pytest.skip("SCRAM users are sasl_ssl's")
    erin = secured.principal(f"erin-{name}")
    password = secured.tmp / f"{name}.password"
    password.write_text(f"new-{uuid.uuid4().hex}\n")
    for user in (f"erin-{name}", ADMIN):
        code, _, err = secured.cli("user", "add", user, "--password-file", str(password))
        assert code == 2 and f"user {user} exists: pass --update" in err, err
    assert secured.cli("topic", "create", name, config=erin)[0] == 11  # logged in, not authorized

    code, _, err = secured.cli("user", "add", f"erin-{name}", "--update", "--password-file", str(password))
    assert code == 0, err
    assert secured.cli("topic", "create", name, config=erin)[0] == 10  # the old password is refused
    erin.write_text(re.sub(r'password="[^"]*"', f'password="{password.read_text().strip()}"', erin.read_text()))
    assert secured.cli("topic", "create", name, config=erin)[0] == 11

    code, _, err = secured.cli("user", "add", ADMIN, "--update", "--password-file", str(password))
    assert code == 0 and f"{secured.admin} now holds the new password" in err, err
    assert f'password="{password.read_text().strip()}"' in secured.admin.read_text()
    assert secured.admin.stat().st_mode & 0o777 == 0o600
    assert secured.cli("topic", "create", name)[0] == 0


def test_a_user_without_acls_is_refused_until_they_are_added(secured: Secured, name: str) -> None:
    carol = secured.principal(f"carol-{name}")
    lines = secured.tmp / f"{name}.txt"
    lines.write_bytes(messy_corpus(lines=200))
    code, _, err = secured.cli("topic", "create", name, config=carol)
    assert (code, err) == (
        11,
        f"mrkafka: error: not authorized to CREATE topic {name} "
        "(ask the cluster's admin for the ACL: mrkafka acl add)\n",
    )
    assert secured.cli("topic", "create", name, "--partitions", "3")[0] == 0
    code, _, err = secured.cli("produce", "--topic", name, "--input", str(lines), config=carol)
    assert code == 11 and f"not authorized to WRITE topic {name} " in err
    code, _, err = secured.cli("consume", "--topic", name, "--from-beginning", "--timeout-ms", "1000", config=carol)
    assert code == 11 and f"not authorized to READ topic {name} " in err

    secured.allow(f"carol-{name}", "--operation", "Write", "--operation", "Read", "--topic", name)
    code, _, err = secured.cli("produce", "--topic", name, "--input", str(lines), config=carol)
    assert code == 0, err
    code, out, err = secured.cli(
        "consume",
        "--topic",
        name,
        "--from-beginning",
        "--max-messages",
        "200",
        "--value-format",
        "bytes",
        "--timeout-ms",
        "20000",
        config=carol,
    )
    assert code == 0, err
    assert len(out.splitlines()) == len(lines.read_bytes().splitlines())
    code, out, _ = secured.cli("acl", "list", "--principal", f"User:carol-{name}")
    assert sorted(out.decode().splitlines()) == sorted(
        f"User:carol-{name}\tALLOW\t{op}\ttopic\t{name}\tliteral\t*" for op in ("Read", "Write")
    )
    code, _, err = secured.cli(
        "acl", "remove", "--principal", f"User:carol-{name}", "--operation", "Write", "--topic", name
    )
    assert code == 0 and "removed" in err
    assert secured.cli("produce", "--topic", name, "--input", str(lines), config=carol)[0] == 11


def documented_stream_acls() -> list[list[str]]:
    """The README's ``mrkafka acl add`` lines for a stream application (Security section)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- stream-acls -->", 1)[1].split("<!-- /stream-acls -->", 1)[0]
    return [shlex.split(line)[3:] for line in block.strip().splitlines()]


def test_a_stream_run_with_the_documented_acls_equals_batch(
    secured: Secured, name: str, ray_cluster, tmp_path: Path
) -> None:
    app, user = f"wc-{name}", f"app-{name}"
    source, sink = f"{name}-lines", f"{name}-counts"
    for topic in (source, sink):
        assert secured.cli("topic", "create", topic, "--partitions", "2")[0] == 0
    data = messy_corpus(lines=1500) + real_text(256 << 10)
    (tmp_path / "in.txt").write_bytes(data)
    assert secured.cli("produce", "--topic", source, "--input", str(tmp_path / "in.txt"))[0] == 0
    config = secured.principal(user)
    run = {
        "bootstrap": secured.bootstrap,
        "command_config": str(config),
        "input_topic": source,
        "output_topic": sink,
        "application_id": app,
        "reducers": 2,
        "until_end": True,
        "state_dir": str(tmp_path / "state"),
        "commit_interval_ms": 200,
    }
    spec = JobSpec(load_job(WORDCOUNT))
    with pytest.raises(Exception, match=f"not authorized to READ topic {source} "):
        run_stream(spec, StreamSettings(output=tmp_path / "refused", **run))

    names = {"lines": source, "counts": sink, "wc": app, "wc-": f"{app}-", "wc-reducers": f"{app}-reducers"}
    for args in documented_stream_acls():
        args = [names.get(arg, arg) for arg in args]
        args[args.index("--principal") + 1] = f"User:{user}"
        code, _, err = secured.cli("acl", "add", *args)
        assert code == 0, err
    run_stream(spec, StreamSettings(output=tmp_path / "stream", **run))
    # The ACLs grant nothing of a neighbour whose name begins with this one's (app "wc-NAMEx").
    code, _, err = secured.cli("topic", "create", f"{app}x-changelog", config=config)
    assert code == 11 and "not authorized" in err, err
    neighbour = Producer(
        {**ClientSecurity.read(config).confluent_options(), "bootstrap.servers": secured.bootstrap}
        | {"transactional.id": f"{app}x-reducer-0"}
    )
    with pytest.raises(KafkaException, match="TRANSACTIONAL_ID_AUTHORIZATION_FAILED"):
        neighbour.init_transactions(30)
    run_batch(
        spec, BatchSettings(inputs=[str(tmp_path / "in.txt")], output=tmp_path / "batch", runner="inline", reducers=2)
    )
    assert read_parts(tmp_path / "stream") == read_parts(tmp_path / "batch")
    for part in ("part-r-00000", "part-r-00001"):
        assert (tmp_path / "stream" / part).read_bytes() == (tmp_path / "batch" / part).read_bytes()


def test_the_admin_secret_is_only_in_its_settings_file(secured: Secured) -> None:
    admin = secured.admin.read_text()
    assert secured.admin.stat().st_mode & 0o777 == 0o600
    if secured.mode == "sasl_ssl":
        secret = re.search(r'password="([^"]+)"', admin).group(1).encode()
        assert f'username="{ADMIN}"' in admin
    else:
        key = Path(re.search(r"ssl.keystore.location=(.+)", admin).group(1))
        secret = key.read_bytes().split(b"-----")[2].strip()  # the private key's base64
    files = [path for path in secured.cluster.data_dir.rglob("*") if path.is_file()]
    holders = [path for path in files if secret in path.read_bytes()]
    expected = secured.admin if secured.mode == "sasl_ssl" else key
    assert holders == [expected]


def test_topics_replicate_across_the_nodes(secured: Secured, name: str) -> None:
    nodes = secured.cluster.brokers
    assert secured.cli("topic", "create", name, "--partitions", "3", "--replication-factor", str(nodes))[0] == 0
    code, out, _ = secured.cli("topic", "describe", name)
    rows = [line for line in out.decode().splitlines() if "Partition:" in line]
    everyone = [str(node) for node in range(nodes)]
    assert len(rows) == 3 and all(sorted(row.split("Isr: ")[1].split(",")) == everyone for row in rows), out
    lines = text_lines(500)
    (secured.tmp / f"{name}.txt").write_bytes(b"\n".join(lines) + b"\n")
    assert secured.cli("produce", "--topic", name, "--input", str(secured.tmp / f"{name}.txt"))[0] == 0
    code, out, err = secured.cli(
        "consume", "--topic", name, "--from-beginning", "--max-messages", "500", "--timeout-ms", "20000"
    )
    assert code == 0, err
    assert Counter(out.splitlines()) == Counter(lines)


def test_no_secret_on_a_command_line_and_no_file_for_other_users(tmp_path: Path) -> None:
    """A sasl_ssl cluster started by ``mrkafka kafka up`` under strace, which records every
    program started and its arguments: neither the admin's password nor its salted form is on
    any; every file and directory below the data directory is its owner's only."""
    data, trace = tmp_path / "data", tmp_path / "trace"
    up = ["kafka", "up", "--security", "sasl_ssl", "--data-dir", str(data), "--port", str(free_ports(1))]
    # strace follows the brokers too, and would end only with them: once `up` itself exited, a
    # SIGTERM (which -I1 lets through) makes it let go of them; they go on running.
    command = ["strace", "-f", "-q", "-I1", "--seccomp-bpf", "-s", "65536", "-e", "trace=execve", "-o", str(trace)]
    tracer = subprocess.Popen([*command, sys.executable, "-m", "mrkafka.cli", *up], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while (up_exit := _exit_of_first(trace)) is None:
            assert tracer.poll() is None and time.monotonic() < deadline, tracer.stderr.read()
            time.sleep(0.5)
        tracer.terminate()
        tracer.wait(timeout=60)
        assert up_exit == 0, (data / "node-0" / "server.log").read_text()[-3000:]
        cluster = Cluster.load(data)
        password = cluster.admin_security().password
        assert secured_cli(cluster, "topic", "create", "private", "--partitions", "2")[0] == 0
        executed = trace.read_text()
        assert "kafka.tools.StorageTool" in executed and "kafka.Kafka" in executed  # what strace saw
        for secret in (password, "--add-scram", "saltedpassword"):
            assert secret not in executed
        for pid in cluster.pids().values():
            assert password not in Path(f"/proc/{pid}/cmdline").read_text()
        assert stat.S_IMODE(data.lstat().st_mode) == 0o700
        shared = [p for p in data.rglob("*") if p.lstat().st_mode & 0o077 and not p.is_symlink()]
        assert shared == [], shared
    finally:
        if tracer.poll() is None:
            tracer.kill()
            tracer.wait()
        subprocess.run([sys.executable, "-m", "mrkafka.cli", "kafka", "down", "--data-dir", str(data)], timeout=120)


def secured_cli(cluster: Cluster, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, [*args, "--bootstrap-servers", cluster.bootstrap_servers, "--command-config", str(cluster.admin_config)]
    )
    return result.exit_code, result.stderr


def _exit_of_first(trace: Path) -> int | None:
    """The exit code of the first process in strace's record (the one it started), once it exited."""
    text = trace.read_text() if trace.exists() else ""
    first = re.match(r"(\d+) ", text)
    found = first and re.search(rf"^{first.group(1)} +\+\+\+ exited with (\d+)", text, re.M)
    return int(found.group(1)) if found else None
