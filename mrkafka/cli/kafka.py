"""``mrkafka kafka``: Apache Kafka (KRaft) on this machine, for development and tests."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from pathlib import Path

import click

from mrkafka.cli.base import debug_option
from mrkafka.devtools.tools import TOOLS
from mrkafka.kafka.security import MODES
from mrkafka.settings import (
    KAFKA_PORT,
)

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Where the brokers keep data, logs and pids [default: ~/.cache/mrkafka/broker].",
)


def _cluster(
    data_dir: str | None,
    brokers: int | None = None,
    port: int | None = None,
    new_ok: bool = False,
    metrics_port: int | None = None,
    security: str | None = None,
    broker_ids: tuple[int, ...] = (),
):
    """The cluster of ``data_dir``: what was started there before (unless ``brokers``,
    ``broker_ids``, ``port``, ``metrics_port`` or ``security`` say otherwise), or, with ``new_ok``,
    a new one."""
    from mrkafka.devtools.launcher import Cluster, default_data_dir
    from mrkafka.errors import SetupError

    directory = Path(data_dir) if data_dir else default_data_dir()
    saved = Cluster.load(directory)
    brokers = brokers or len(broker_ids) or None
    if saved is not None:  # what was started there before, unless told otherwise
        port = port or saved.port
        metrics_port = metrics_port if metrics_port is not None else saved.metrics_port
        security = security or saved.security
        if brokers is None:  # its nodes as they are now, brokers added and removed included
            return dataclasses.replace(saved, port=port, metrics_port=metrics_port, security=security)
    elif not new_ok:
        raise SetupError(f"no Kafka was started in {directory} (start one with: mrkafka kafka up)")
    return Cluster(
        directory,
        brokers or 1,
        port or KAFKA_PORT,
        metrics_port=metrics_port,
        security=security or "plaintext",
        broker_ids=broker_ids,
    )


def _broker_ids(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, ...]:
    if value is None:
        return ()
    try:
        ids = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of broker ids") from None
    if len(set(ids)) != len(ids) or min(ids) < 0:
        raise click.BadParameter(f"{value!r}: the ids must be distinct and not negative")
    return ids


@click.group(short_help="Run Apache Kafka (KRaft) here, for development and tests.")
def kafka() -> None:
    """Run Apache Kafka (KRaft) on this machine, for development, tests and demos."""


@kafka.command()
@click.option(
    "--brokers",
    type=click.IntRange(1, 5),
    help="Nodes, 1 to 5: the first three are controllers too [default: 1, or what DIR held].",
)
@click.option(
    "--broker-ids",
    metavar="ID,ID,...",
    callback=_broker_ids,
    help="The nodes' ids, in port order, e.g. 10,20,30 [default: 0,1,..., or what DIR held].",
)
@click.option(
    "--port",
    type=click.IntRange(1024, 65535 - 200 - 4),
    help="Client port of the first node (node i: port + i), controllers 100 above, a secured cluster's "
    "inter-broker listeners 200 above [default: 9092, or what DIR held].",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1024, 65535 - 2),
    help="Node i serves Prometheus metrics (the JMX exporter) on this port + i [default: none, or what DIR held].",
)
@click.option(
    "--security",
    type=click.Choice(MODES),
    help="What clients must do: nothing, TLS (ssl), TLS and a SCRAM password (sasl_ssl), TLS with a "
    "client certificate (mtls). Secured clusters authorize with ACLs; the admin's client settings are "
    "in DIR/admin.properties [default: plaintext, or what DIR held].",
)
@data_dir_option
@debug_option
def up(
    brokers: int | None,
    broker_ids: tuple[int, ...],
    port: int | None,
    metrics_port: int | None,
    security: str | None,
    data_dir: str | None,
) -> None:
    """Fetch Kafka (once), start it in the background and print the bootstrap servers.

    \b
    Examples:
      mrkafka kafka up                       # one broker on 127.0.0.1:9092
      mrkafka kafka up --brokers 3 --port 29092 --data-dir /tmp/k3
      mrkafka kafka up --broker-ids 10,20,30 # three nodes with a course's ids
      mrkafka kafka up --metrics-port 7071   # metrics at http://127.0.0.1:7071/metrics
      mrkafka kafka up --security sasl_ssl   # then: --command-config ~/.cache/mrkafka/broker/admin.properties
    """
    cluster = _cluster(data_dir, brokers, port, True, metrics_port, security, broker_ids)
    click.echo(cluster.start())
    if cluster.secured:
        click.echo(f"admin client settings: {cluster.admin_config}", err=True)


@kafka.command()
@click.argument("name")
@click.option("--days", type=click.IntRange(min=1), default=365, show_default=True, help="How long it is valid.")
@data_dir_option
@debug_option
def cert(name: str, days: int, data_dir: str | None) -> None:
    """Issue a client certificate for User:NAME, signed by the cluster's CA.

    For ssl and mtls clusters. Prints the path of NAME.properties: the client settings that use
    it, for --command-config and for Kafka's own tools.
    """
    from mrkafka.kafka.security import checked_name

    checked_name(name, "certificate")  # before anything is read or written
    cluster = _cluster(data_dir)
    pem = cluster.issue_certificate(name, days=days)
    click.echo(pem.with_suffix(".properties"))


@kafka.command()
@data_dir_option
@debug_option
def down(data_dir: str | None) -> None:
    """Stop the brokers that `up` started (by their recorded pids)."""
    stopped = _cluster(data_dir).stop()
    click.echo(f"stopped {len(stopped)} broker(s)" if stopped else "no broker was running", err=True)


@kafka.command()
@data_dir_option
@debug_option
def status(data_dir: str | None) -> None:
    """Say which brokers run, with their pids and ports (exit 1: none runs)."""
    from mrkafka.devtools.launcher import Cluster, default_data_dir

    directory = Path(data_dir) if data_dir else default_data_dir()
    if Cluster.load(directory) is None:
        click.echo(f"no Kafka was started in {directory} (start one with: mrkafka kafka up)")
        sys.exit(1)
    cluster = _cluster(data_dir)
    running = 0
    for node, pid in cluster.status():
        state = f"running (pid {pid})" if pid else "stopped"
        click.echo(f"node {node.node_id}: 127.0.0.1:{node.port} {state}  logs: {node.log}")
        running += pid is not None
    if not running:
        sys.exit(1)


@kafka.command("add-broker")
@click.option("--broker-id", type=click.IntRange(min=0), help="The new broker's id [default: the largest id + 1].")
@data_dir_option
@debug_option
def add_broker(broker_id: int | None, data_dir: str | None) -> None:
    """Start one more broker in the running cluster, and print the bootstrap servers.

    The new broker is a broker only (the controllers stay those the cluster was made with) and
    holds no partition until some are moved onto it with `mrkafka topic reassign`.
    """
    from mrkafka.devtools.membership import add_broker

    cluster = add_broker(_cluster(data_dir), broker_id)
    click.echo(cluster.bootstrap_servers)


@kafka.command("remove-broker")
@click.argument("broker_id", type=int)
@data_dir_option
@debug_option
def remove_broker(broker_id: int, data_dir: str | None) -> None:
    """Stop broker BROKER_ID and unregister it from the cluster.

    Only a broker that is not a controller (one added with add-broker, or a fourth or fifth
    node), and that holds no replica any more: move its partitions off with `mrkafka topic
    reassign` first.
    """
    from mrkafka.devtools.membership import remove_broker

    cluster = remove_broker(_cluster(data_dir), broker_id)
    click.echo(f"removed broker {broker_id}; the cluster: {cluster.bootstrap_servers}", err=True)


@kafka.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    short_help="Run one of Kafka's own tools (kafka-topics, ...) on this cluster.",
    epilog="\b\nThe tools:\n" + textwrap.fill(", ".join(sorted(TOOLS)), 76, break_on_hyphens=False),
)
@click.argument("name")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@data_dir_option
def tool(name: str, args: tuple[str, ...], data_dir: str | None) -> None:
    """Run Kafka's tool NAME (kafka-topics, kafka-configs, ...) with ARGS, on this cluster.

    \b
    The tool connects to the cluster that `up` started in DIR, with its admin settings if it is
    secured, unless ARGS give --bootstrap-server (or --command-config). Without --data-dir,
    MRKAFKA_BOOTSTRAP_SERVERS and MRKAFKA_COMMAND_CONFIG name the cluster when set.
    Options of mrkafka's own (--data-dir) come before NAME.

    \b
    Examples:
      mrkafka kafka tool kafka-topics --create --topic kafkademo --partitions 6 --replication-factor 2
      mrkafka kafka tool kafka-configs --entity-type topics --entity-name demo12 --describe
      mrkafka kafka tool kafka-reassign-partitions --verify --reassignment-json-file move.json
      mrkafka kafka tool kafka-topics --help
    """
    import os

    from mrkafka.devtools.tools import needs_connection, tool_argv

    bootstrap, command_config = _tool_connection(data_dir, needs_connection(name, args))
    argv = tool_argv(name, args, bootstrap, command_config)
    sys.stdout.flush()
    os.execv(argv[0], argv)  # the tool's exit code, signals and terminal are the user's


def _tool_connection(data_dir: str | None, connects: bool) -> tuple[str, Path | None]:
    """Where ``kafka tool`` connects, and with which client settings (see its help); with
    ``connects``, a cluster found in the data dir must be running."""
    import os

    from mrkafka.devtools.launcher import Cluster, default_data_dir
    from mrkafka.errors import SetupError
    from mrkafka.settings import BOOTSTRAP_SERVERS

    if data_dir is None and os.environ.get("MRKAFKA_BOOTSTRAP_SERVERS"):
        config = os.environ.get("MRKAFKA_COMMAND_CONFIG")
        return os.environ["MRKAFKA_BOOTSTRAP_SERVERS"], Path(config) if config else None
    directory = Path(data_dir) if data_dir else default_data_dir()
    cluster = Cluster.load(directory)
    if cluster is None:
        return BOOTSTRAP_SERVERS, None
    if connects and not any(pid for _, pid in cluster.status()):
        raise SetupError(
            f"no broker of {directory} is running (start them with: mrkafka kafka up --data-dir {directory})"
        )
    return cluster.bootstrap_servers, cluster.admin_config if cluster.secured else None
