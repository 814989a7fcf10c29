"""A development cluster's nodes and their configuration files: where each node listens,
and the ``server.properties`` and log configuration the launcher writes for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ADMIN",
    "BROKER_PRINCIPAL",
    "CONTROLLER_PORT_OFFSET",
    "INTERNAL_PORT_OFFSET",
    "Node",
    "listeners",
    "log4j_properties",
    "server_properties",
]

# A node's controller listens this far above its client port.
CONTROLLER_PORT_OFFSET = 100
# ... and a secured node's listener for the other brokers this far.
INTERNAL_PORT_OFFSET = 200
#: The super user of a secured cluster (a SCRAM user under sasl_ssl, a certificate's CN otherwise).
ADMIN = "admin"
BROKER_PRINCIPAL = "broker"
CLIENT_AUTH = {"ssl": "requested", "sasl_ssl": "none", "mtls": "required"}


@dataclass(frozen=True)
class Node:
    node_id: int
    port: int
    controller_port: int
    directory: Path
    metrics_port: int | None = None
    #: Whether the node is a KRaft controller too (a voter of the metadata quorum), not a broker only.
    controller: bool = True

    @property
    def internal_port(self) -> int:
        return self.port + INTERNAL_PORT_OFFSET

    @property
    def config(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"


def listeners(node: Node, security: str, broker_pem: Path, ca_cert: Path) -> list[str]:
    """The listeners of ``node``: plaintext, or (secured) TLS everywhere and the authorizer."""
    controller = f",CONTROLLER://127.0.0.1:{node.controller_port}" if node.controller else ""
    if security == "plaintext":
        return [
            f"listeners=PLAINTEXT://127.0.0.1:{node.port}{controller}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{node.port}",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ]
    client = "SASL_SSL" if security == "sasl_ssl" else "SSL"
    lines = [
        f"listeners=CLIENT://127.0.0.1:{node.port},INTERNAL://127.0.0.1:{node.internal_port}{controller}",
        f"advertised.listeners=CLIENT://127.0.0.1:{node.port},INTERNAL://127.0.0.1:{node.internal_port}",
        "inter.broker.listener.name=INTERNAL",
        f"listener.security.protocol.map=CLIENT:{client},INTERNAL:SSL,CONTROLLER:SSL",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={broker_pem}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={ca_cert}",
        "ssl.client.auth=required",  # the brokers' and controllers' own listeners
        f"listener.name.client.ssl.client.auth={CLIENT_AUTH[security]}",
        "ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users=User:{ADMIN};User:{BROKER_PRINCIPAL}",
        "allow.everyone.if.no.acl.found=false",
    ]
    if security == "sasl_ssl":
        lines += ["listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256"] + [
            f"listener.name.client.{m}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            for m in ("scram-sha-512", "scram-sha-256")
        ]
    return lines


def server_properties(node: Node, voters: str, brokers: int, listener_lines: list[str]) -> str:
    """A node's ``server.properties``: a broker, and a controller too if it is one of the
    ``voters``; internal topics replicated as the cluster's size allows."""
    replication = min(3, brokers)
    return "\n".join(
        [
            f"process.roles={'broker,controller' if node.controller else 'broker'}",
            f"node.id={node.node_id}",
            f"controller.quorum.voters={voters}",
            *listener_lines,
            "controller.listener.names=CONTROLLER",
            f"log.dirs={node.directory / 'logs'}",
            "num.partitions=1",
            f"default.replication.factor={replication}",
            f"offsets.topic.replication.factor={replication}",
            f"transaction.state.log.replication.factor={replication}",
            f"transaction.state.log.min.isr={min(2, replication)}",
            "auto.create.topics.enable=false",
            "group.initial.rebalance.delay.ms=0",
            "log.cleaner.backoff.ms=1000",
            "",
        ]
    )


def log4j_properties(log: Path) -> str:
    """A node's log configuration: its log file, Kafka's own classes at WARN."""
    return "\n".join(
        [
            "status = warn",
            "appender.file.type = File",
            "appender.file.name = FILE",
            f"appender.file.fileName = {log}",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.file.ref = FILE",
            "logger.kafka.name = org.apache.kafka",
            "logger.kafka.level = WARN",
            "",
        ]
    )
