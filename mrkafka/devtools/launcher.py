"""Apache Kafka 4.3.1 from Maven Central, run in KRaft mode on 127.0.0.1.

``Cluster`` writes one config per node (the first three nodes both broker and controller, the
voters of the metadata quorum; any further ones brokers only), formats storage with Kafka's
StorageTool, starts ``kafka.Kafka`` in the background with its logs in the data dir, waits until
every broker answers a metadata request, and records the pids in the data dir so that ``stop``
ends exactly those processes, never others found by name.

A secured cluster (``security`` other than plaintext) gets a CA and certificates in
``DATA_DIR/tls``, TLS on every listener, KRaft's StandardAuthorizer with the admin as the only
super user, and ``DATA_DIR/admin.properties``: the admin's client settings (mode 0600). Its
client listener asks for what the mode names; brokers and controllers talk to each other
over listeners of their own that require the brokers' certificate.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from mrkafka.devtools import broker_config, processes
from mrkafka.devtools.broker_config import ADMIN, BROKER_PRINCIPAL, CONTROLLER_PORT_OFFSET, INTERNAL_PORT_OFFSET, Node
from mrkafka.devtools.certificates import CertificateAuthority
from mrkafka.devtools.jars import JMX_EXPORTER_RULES, cache_root, ensure_jars, java_command, jmx_exporter_jar
from mrkafka.errors import MrkafkaError, SetupError
from mrkafka.kafka.security import MODES, PLAINTEXT, ClientSecurity, checked_name, private_dir, write_properties
from mrkafka.settings import KAFKA_PORT

__all__ = [
    "ADMIN",
    "CONTROLLER_PORT_OFFSET",
    "INTERNAL_PORT_OFFSET",
    "Cluster",
    "default_data_dir",
]

HEAP = "512m"
STATE_FILE = "cluster.json"
MAX_BROKERS = 5
#: The first nodes are the metadata quorum's voters: three tolerate one lost, as Kafka advises.
CONTROLLERS = 3


def _ids(ids: tuple[int, ...]) -> str:
    return ",".join(map(str, ids))


def default_data_dir() -> Path:
    return cache_root() / "broker"


def _new_cluster_id() -> str:
    """A random id in Kafka's form: 16 bytes, URL-safe base64 without padding, not starting
    with "-" (which the tools would read as an option; Kafka's Uuid.randomUuid skips those too)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class Cluster:
    """One to five nodes in ``data_dir``: node i has id ``broker_ids[i]`` (default i) and client
    port ``port + slots[i]`` (default i); the first three are controllers too."""

    data_dir: Path
    brokers: int = 1
    port: int = KAFKA_PORT
    heap: str = HEAP
    #: Node i serves Prometheus metrics (the JMX exporter) on this port + i; ``None``: none.
    metrics_port: int | None = None
    #: What the client listener asks of a client (``MODES``).
    security: str = "plaintext"
    #: The nodes' ids, in port order (empty: 0 .. brokers - 1).
    broker_ids: tuple[int, ...] = ()
    #: Each node's place: its ports are ``port + slot`` and so on (empty: 0 .. brokers - 1). A
    #: broker removed leaves its slot free, and the others keep their ports.
    slots: tuple[int, ...] = ()
    #: The nodes in the first this many slots are the controllers (0: min(3, brokers)), as the
    #: cluster was made; brokers added later are brokers only.
    controllers: int = 0

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if not 1 <= self.brokers <= MAX_BROKERS:
            raise SetupError(f"--brokers must be 1 to {MAX_BROKERS}, got {self.brokers}")
        self.broker_ids = tuple(self.broker_ids) or tuple(range(self.brokers))
        if len(self.broker_ids) != self.brokers:
            raise SetupError(f"--broker-ids names {len(self.broker_ids)} broker(s), but --brokers is {self.brokers}")
        if len(set(self.broker_ids)) != self.brokers or min(self.broker_ids) < 0:
            raise SetupError(f"--broker-ids must be distinct and not negative, got {_ids(self.broker_ids)}")
        self.slots = tuple(self.slots) or tuple(range(self.brokers))
        self.controllers = self.controllers or min(CONTROLLERS, self.brokers)
        if self.security not in MODES:
            raise SetupError(f"--security must be one of {', '.join(MODES)}, got {self.security}")

    @property
    def secured(self) -> bool:
        return self.security != "plaintext"

    @property
    def ca(self) -> CertificateAuthority:
        return CertificateAuthority(self.data_dir / "tls")

    @property
    def admin_config(self) -> Path:
        """The admin's client settings (a secured cluster's)."""
        return self.data_dir / "admin.properties"

    def admin_security(self) -> ClientSecurity:
        return ClientSecurity.read(self.admin_config, warn=False) if self.secured else PLAINTEXT

    def client_properties(self, **settings: str) -> dict[str, str]:
        """A client's settings for this cluster's listener: TLS trusting the cluster's CA, and ``settings``."""
        if not self.secured:
            return dict(settings)
        protocol = "SASL_SSL" if self.security == "sasl_ssl" else "SSL"
        return {
            "security.protocol": protocol,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca.cert),
            **settings,
        }

    def issue_certificate(self, name: str, path: Path | None = None, days: int = 365) -> Path:
        """A client certificate for ``User:name``, and beside it ``name.properties`` to use it."""
        checked_name(name, "certificate")
        if self.security not in ("ssl", "mtls") or not self.ca.exists():
            raise SetupError(
                f"client certificates are for clusters started with --security ssl or mtls; the one in "
                f"{self.data_dir} is {self.security}{'' if self.ca.exists() else ', not started yet'}"
            )
        path = path or self.data_dir / "clients" / f"{name}.pem"
        self.ca.issue(name, path, days=days)
        write_properties(
            path.with_suffix(".properties"),
            self.client_properties(**{"ssl.keystore.type": "PEM", "ssl.keystore.location": str(path)}),
        )
        return path

    @property
    def nodes(self) -> list[Node]:
        metrics = self.metrics_port
        return [
            Node(
                node_id,
                self.port + slot,
                self.port + CONTROLLER_PORT_OFFSET + slot,
                self.data_dir / f"node-{node_id}",
                None if metrics is None else metrics + slot,
                controller=slot < self.controllers,
            )
            for node_id, slot in zip(self.broker_ids, self.slots, strict=True)
        ]

    def node(self, node_id: int) -> Node:
        """The node whose id is ``node_id``."""
        return next(node for node in self.nodes if node.node_id == node_id)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    # -- state kept in the data dir -----------------------------------------------------------

    @classmethod
    def load(cls, data_dir: Path) -> Cluster | None:
        """The cluster recorded in ``data_dir``, if ``up`` ran there."""
        state = Path(data_dir).expanduser() / STATE_FILE
        if not state.exists():
            return None
        saved = json.loads(state.read_text())
        return cls(
            Path(data_dir),
            saved["brokers"],
            saved["port"],
            saved.get("heap", HEAP),
            saved.get("metrics_port"),
            saved.get("security", "plaintext"),
            tuple(saved.get("broker_ids", ())),
            tuple(saved.get("slots", ())),
            saved.get("controllers", 0),
        )

    def _state(self) -> dict:
        path = self.data_dir / STATE_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def _update_state(self, **changes: object) -> None:
        state = {
            **self._state(),
            "brokers": self.brokers,
            "port": self.port,
            "heap": self.heap,
            "metrics_port": self.metrics_port,
            "security": self.security,
            "broker_ids": list(self.broker_ids),
            "slots": list(self.slots),
            "controllers": self.controllers,
            **changes,
        }
        (self.data_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    def record(self) -> None:
        """Write what the cluster is (its nodes, ids, ports) into the data dir, keeping its pids."""
        self._update_state()

    def pids(self) -> dict[int, int]:
        """Node id -> pid of the nodes that were started here and still run."""
        running = {}
        for node_id, pid in self._state().get("pids", {}).items():
            if processes.running(pid, "kafka.Kafka", str(self.data_dir / f"node-{node_id}" / "server.properties")):
                running[int(node_id)] = pid
        return running

    # -- lifecycle ----------------------------------------------------------------------------

    def _secure(self) -> None:
        """Make a secured cluster's CA, certificates and admin settings (once)."""
        if not self.secured:
            return
        tls = self.data_dir / "tls"
        if not self.ca.exists():
            self.ca.create(f"mrkafka CA {self.data_dir.name}")
            self.ca.issue(BROKER_PRINCIPAL, tls / "broker.pem", server=True, days=3650)
        if not self.admin_config.exists():
            if self.security == "sasl_ssl":
                jaas = (
                    f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{ADMIN}" '
                    f'password="{secrets.token_urlsafe(24)}";'
                )
                settings = {"sasl.mechanism": "SCRAM-SHA-512", "sasl.jaas.config": jaas}
            else:
                self.ca.issue(ADMIN, tls / "admin.pem", days=3650)
                settings = {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(tls / "admin.pem")}
            write_properties(self.admin_config, self.client_properties(**settings))

    def _add_admin_user(self, deadline: float) -> None:
        """sasl_ssl: give the admin its SCRAM credential (unless it has one) through the admin
        API, logged in on the brokers' own listener with their certificate (a super user): the
        password, salted or not, is on no command line."""
        from mrkafka.kafka.acl import SecurityAdmin

        pem = str(self.data_dir / "tls" / "broker.pem")
        internal = ",".join(f"127.0.0.1:{n.internal_port}" for n in self.nodes)
        broker = ClientSecurity(protocol="SSL", cafile=str(self.ca.cert), certfile=pem, keyfile=pem)
        while True:
            try:
                admin = SecurityAdmin(internal, timeout=5.0, security=broker)
                if "SCRAM-SHA-512" not in admin.list_users().get(ADMIN, []):
                    admin.add_user(ADMIN, self.admin_security().password or "")
                return
            except MrkafkaError as exc:  # not up yet
                if time.monotonic() > deadline:
                    raise SetupError(f"could not create the admin user: {exc}; see {self.nodes[0].log}") from None
                time.sleep(0.3)

    def _write_configs(self) -> None:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes if n.controller)
        for node in self.nodes:
            node.directory.mkdir(parents=True, exist_ok=True)
            listeners = broker_config.listeners(node, self.security, self.data_dir / "tls" / "broker.pem", self.ca.cert)
            node.config.write_text(broker_config.server_properties(node, voters, self.brokers, listeners))
            (node.directory / "log4j2.properties").write_text(broker_config.log4j_properties(node.log))

    def _java(
        self, node: Node, main_class: str, *args: str, heap: str | None = None, agent: list[str] | None = None
    ) -> list[str]:
        lib = ensure_jars()
        return [
            java_command(),
            *(agent or []),
            f"-Xmx{heap or self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={node.directory / 'log4j2.properties'}",
            "-cp",
            f"{lib}/*",
            main_class,
            *args,
        ]

    def _format(self, cluster_id: str) -> None:
        for node in self.nodes:
            if (node.directory / "logs" / "meta.properties").exists():
                continue
            cmd = self._java(
                node,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                cluster_id,
                "--config",
                str(node.config),
                heap="256m",
            )
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise SetupError(f"formatting Kafka storage failed: {(result.stdout + result.stderr).strip()}")

    def start(self, timeout: float = 90.0) -> str:
        """Start every node that is not running; return the bootstrap servers once all answer.
        What it writes under the data directory (and its brokers write) is its user's only."""
        with processes.private_files():
            return self._start(timeout)

    def _start(self, timeout: float) -> str:
        ensure_jars()
        java_command()
        private_dir(self.data_dir)  # its topics' segments and its secrets are its user's only
        saved = self._state()
        ids = tuple(saved.get("broker_ids", range(saved.get("brokers", 0))))
        was = (saved.get("brokers"), saved.get("port"), saved.get("security", "plaintext"), ids)
        if saved and was != (self.brokers, self.port, self.security, self.broker_ids):
            what = f"{self.data_dir} holds a cluster of brokers {_ids(ids)} on port {was[1]}, {was[2]}"
            if self.pids():
                raise SetupError(f"{what}, running: stop it first, or choose another --data-dir")
            raise SetupError(
                f"{what}: start it as it was (mrkafka kafka up --data-dir {self.data_dir}), "
                "or choose another --data-dir"
            )
        pids = self.pids()
        for node in self.nodes:
            if node.node_id in pids:
                continue
            internal = node.internal_port if self.secured else None
            for port, option in (
                (node.port, "--port"),
                (node.controller_port if node.controller else None, "--port"),
                (internal, "--port"),
                (node.metrics_port, "--metrics-port"),
            ):
                if port is not None and not processes.port_free(port):
                    raise SetupError(f"port {port} on 127.0.0.1 is taken; pick another with {option}")
        self._secure()
        self._write_configs()
        cluster_id = saved.get("cluster_id") or _new_cluster_id()
        self._format(cluster_id)
        for node in self.nodes:
            if node.node_id not in pids:
                pids[node.node_id] = self._spawn(node)
        self._update_state(cluster_id=cluster_id, pids=pids)
        if self.security == "sasl_ssl":
            self._add_admin_user(time.monotonic() + timeout)
        self.wait_ready(timeout)
        if self.metrics_port is not None:
            self.register_metrics()
        return self.bootstrap_servers

    def register_metrics(self) -> None:
        """Tell ``mrkafka monitor``'s Prometheus where the nodes serve their metrics."""
        from mrkafka.obs.metrics import register

        register(self._target_name, [node.metrics_port for node in self.nodes], "kafka")

    @property
    def _target_name(self) -> str:
        return f"kafka-{self.port}"

    def _spawn(self, node: Node) -> int:
        agent = None
        if node.metrics_port is not None:  # on loopback, as every listener of the node
            agent = [f"-javaagent:{jmx_exporter_jar()}=127.0.0.1:{node.metrics_port}:{JMX_EXPORTER_RULES}"]
        return processes.spawn(
            self._java(node, "kafka.Kafka", str(node.config), agent=agent), node.directory / "stdout.log"
        ).pid

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until every running node is a registered broker that answers metadata requests."""
        from mrkafka.kafka.admin import Admin

        deadline = time.monotonic() + timeout
        started = {int(n): pid for n, pid in self._state().get("pids", {}).items()}
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            dead = sorted(n for n, pid in started.items() if not processes.running(pid))
            if dead:
                raise SetupError(f"Kafka node {dead[0]} exited; see {self.node(dead[0]).log}")
            try:
                with Admin(self.bootstrap_servers, timeout=5.0, security=self.admin_security()) as kafka:
                    if started.keys() <= kafka.broker_ids():
                        return
            except Exception as exc:  # not up yet
                last_error = exc
            time.sleep(0.3)
        raise SetupError(f"Kafka did not answer within {timeout:.0f} s ({last_error}); see {self.nodes[0].log}")

    def stop(self, node_id: int | None = None, timeout: float = 30.0) -> list[int]:
        """Stop all nodes (or one), by recorded pid: SIGTERM, then SIGKILL after ``timeout``.

        Brokers that are not controllers stop first: a broker's controlled shutdown waits for
        the controllers' answer, which none gives once their quorum is gone."""
        pids = self.pids()
        targets = {n: p for n, p in pids.items() if node_id is None or n == node_id}
        controllers = {node.node_id for node in self.nodes if node.controller}
        processes.stop([p for n, p in targets.items() if n not in controllers], timeout)
        processes.stop([p for n, p in targets.items() if n in controllers], timeout)
        self._update_state(pids={n: p for n, p in pids.items() if n not in targets})
        if node_id is None and self.metrics_port is not None:
            from mrkafka.obs.metrics import unregister

            unregister(self._target_name)
        return sorted(targets.values())

    def status(self) -> list[tuple[Node, int | None]]:
        pids = self.pids()
        return [(node, pids.get(node.node_id)) for node in self.nodes]
