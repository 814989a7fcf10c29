"""``mrkafka topic``: create, list, describe, alter and delete topics, and move their partitions."""

from __future__ import annotations

import sys

import click

from mrkafka.cli.base import bootstrap_option, client_security, debug_option


@click.group()
def topic() -> None:
    """Create, list, describe, alter and delete topics, and move their partitions."""


config_option = click.option(
    "--config", "configs", multiple=True, metavar="KEY=VALUE", help="A topic config (repeatable)."
)


@topic.command("create")
@click.argument("name")
@click.option("--partitions", type=click.IntRange(min=1), default=1, show_default=True, help="Partition count.")
@click.option(
    "--replication-factor",
    type=click.IntRange(min=1),
    help="Copies of each partition, at most the broker count [default: the brokers' default.replication.factor; "
    "on `mrkafka kafka up`'s clusters, 3 or the broker count if less].",
)
@config_option
@bootstrap_option
@debug_option
def topic_create(
    name: str,
    partitions: int,
    replication_factor: int | None,
    configs: tuple[str, ...],
    bootstrap_servers: str,
    command_config: str | None,
) -> None:
    """Create topic NAME."""
    from mrkafka.kafka import admin

    admin.create_topic(
        bootstrap_servers,
        name,
        partitions,
        -1 if replication_factor is None else replication_factor,  # -1: the brokers' default (KIP-464)
        _key_values(configs),
        security=client_security(command_config),
    )
    click.echo(f"created topic {name}", err=True)


def _key_values(items: tuple[str, ...]) -> dict[str, str]:
    from mrkafka.errors import BadInputError

    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInputError(f"--config {item!r} is not of the form key=value")
        settings[key] = value
    return settings


@topic.command("list")
@click.option("--internal", is_flag=True, help="Also list Kafka's internal topics.")
@bootstrap_option
@debug_option
def topic_list(internal: bool, bootstrap_servers: str, command_config: str | None) -> None:
    """List the topics."""
    from mrkafka.kafka import admin

    for name in admin.list_topics(bootstrap_servers, internal, security=client_security(command_config)):
        click.echo(name)


@topic.command("describe")
@click.argument("name")
@bootstrap_option
@debug_option
def topic_describe(name: str, bootstrap_servers: str, command_config: str | None) -> None:
    """Partitions (leader, replicas, ISR) and configs of topic NAME."""
    from mrkafka.kafka import admin

    info = admin.describe_topic(bootstrap_servers, name, security=client_security(command_config))
    replication = len(info.partitions[0].replicas) if info.partitions else 0
    configs = ",".join(f"{k}={v}" for k, v in sorted(info.configs.items()))
    click.echo(
        f"Topic: {name}\tPartitionCount: {len(info.partitions)}\tReplicationFactor: {replication}\tConfigs: {configs}"
    )
    for p in info.partitions:
        click.echo(
            f"\tTopic: {name}\tPartition: {p.partition}\tLeader: {p.leader}"
            f"\tReplicas: {','.join(map(str, p.replicas))}\tIsr: {','.join(map(str, p.isr))}"
        )


@topic.command("alter")
@click.argument("name")
@click.option("--partitions", type=click.IntRange(min=1), help="The new, larger, partition count.")
@config_option
@click.option(
    "--delete-config", "deleted", multiple=True, metavar="KEY", help="Back to the broker's default (repeatable)."
)
@bootstrap_option
@debug_option
def topic_alter(
    name: str,
    partitions: int | None,
    configs: tuple[str, ...],
    deleted: tuple[str, ...],
    bootstrap_servers: str,
    command_config: str | None,
) -> None:
    """Raise the partition count of topic NAME, or change its configs.

    \b
    Examples:
      mrkafka topic alter demo --partitions 7
      mrkafka topic alter demo12 --config max.compaction.lag.ms=1000 --delete-config retention.ms
    """
    from mrkafka.errors import BadInputError
    from mrkafka.kafka import admin

    settings = _key_values(configs)
    if partitions is None and not settings and not deleted:
        raise BadInputError("topic alter needs --partitions, --config or --delete-config")
    if both := set(settings) & set(deleted):
        raise BadInputError(f"--config and --delete-config both name {', '.join(sorted(both))}")
    with admin.Admin(bootstrap_servers, security=client_security(command_config)) as kafka:
        if settings or deleted:
            kafka.change_configs(name, settings, deleted)
            click.echo(f"topic {name}: configs changed", err=True)
        if partitions is not None:
            kafka.alter_partitions(name, partitions)
            click.echo(f"topic {name} has {partitions} partitions", err=True)


@topic.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Also delete one of Kafka's own topics, or a running application's.")
@bootstrap_option
@debug_option
def topic_delete(name: str, force: bool, bootstrap_servers: str, command_config: str | None) -> None:
    """Delete topic NAME.

    Kafka's own topics (names starting with __) and a running application's internal topics
    are refused unless --force.
    """
    from mrkafka.kafka import admin
    from mrkafka.stream import application

    with admin.Admin(bootstrap_servers, security=client_security(command_config)) as kafka:
        if not force:
            application.refuse_deleting(kafka, name)
        kafka.delete_topic(name)
    click.echo(f"deleted topic {name}", err=True)


@topic.command("reassign", short_help="Move partitions between brokers, with kafka-reassign-partitions' files.")
@click.option("--generate", "mode", flag_value="generate", help="Print the current and a proposed assignment.")
@click.option("--execute", "mode", flag_value="execute", help="Start the moves of --reassignment-json-file.")
@click.option(
    "--verify", "mode", flag_value="verify", help="Say which moves are done; remove the throttles once all are."
)
@click.option(
    "--cancel", "mode", flag_value="cancel", help="Stop the moves of --reassignment-json-file, back to before."
)
@click.option("--list", "mode", flag_value="list", help="The reassignments in progress.")
@click.option(
    "--topics-to-move-json-file",
    "topics_file",
    type=click.Path(dir_okay=False),
    help='--generate: {"topics": [{"topic": NAME}, ...], "version": 1}.',
)
@click.option("--broker-list", metavar="ID,ID,...", help="--generate: the brokers to spread the partitions over.")
@click.option(
    "--reassignment-json-file",
    "moves_file",
    type=click.Path(dir_okay=False),
    help='{"version": 1, "partitions": [{"topic": T, "partition": N, "replicas": [ID, ...]}, ...]}.',
)
@click.option(
    "--throttle", type=click.IntRange(min=1), metavar="BYTES/S", help="--execute: cap the moves' replication."
)
@click.option("--additional", is_flag=True, help="--execute: start moves while others are in progress.")
@click.option("--preserve-throttles", is_flag=True, help="--verify, --cancel: leave the throttles set.")
@click.option("--disable-rack-aware", is_flag=True, help="--generate: ignore the brokers' racks.")
@bootstrap_option
@debug_option
def topic_reassign(
    mode: str | None,
    topics_file: str | None,
    broker_list: str | None,
    moves_file: str | None,
    throttle: int | None,
    additional: bool,
    preserve_throttles: bool,
    disable_rack_aware: bool,
    bootstrap_servers: str,
    command_config: str | None,
) -> None:
    """Move partitions between brokers, as Kafka's kafka-reassign-partitions does, with its files.

    Kafka's own tool carries out --execute, --verify, --cancel and --list, after mrkafka has
    checked every entry of the file against the cluster (exit 2, nothing changed, if one is
    wrong). --generate balances the partitions' bytes and leaders over --broker-list, keeping
    a partition's replicas on distinct racks.

    \b
    Examples:
      mrkafka topic reassign --generate --topics-to-move-json-file move.json --broker-list 10,20,30
      mrkafka topic reassign --execute --reassignment-json-file plan.json --throttle 10000000
      mrkafka topic reassign --verify --reassignment-json-file plan.json
    """
    from mrkafka.devtools import reassign
    from mrkafka.errors import BadInputError
    from mrkafka.kafka import admin

    if mode is None:
        raise BadInputError("topic reassign needs one of --generate, --execute, --verify, --cancel, --list")
    needs = {
        "generate": {"--topics-to-move-json-file": topics_file, "--broker-list": broker_list},
        "list": {},
    }.get(mode, {"--reassignment-json-file": moves_file})
    if missing := [option for option, value in needs.items() if not value]:
        raise BadInputError(f"topic reassign --{mode} needs {missing[0]}")
    with admin.Admin(bootstrap_servers, security=client_security(command_config)) as kafka:
        if mode == "generate":
            ids = reassign.broker_list(broker_list or "")
            click.echo(reassign.generate(kafka, command_config, topics_file or "", ids, not disable_rack_aware))
            return
        if mode != "list":
            reassign.checked_moves(kafka, command_config, moves_file or "", busy_ok=additional or mode != "execute")
    args = [f"--{mode}"] + (["--reassignment-json-file", moves_file] if moves_file and mode != "list" else [])
    args += [*(["--throttle", str(throttle)] if throttle else []), *(["--additional"] if additional else [])]
    args += ["--preserve-throttles"] if preserve_throttles else []
    code, _ = reassign.run(args, bootstrap_servers, command_config)
    sys.exit(code)
