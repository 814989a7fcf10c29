"""``mrkafka topic``: create, list, describe, alter and delete topics."""

from __future__ import annotations

import click

from mrkafka.cli.base import bootstrap_option, client_security, debug_option


@click.group()
def topic() -> None:
    """Create, list, describe, alter and delete topics."""


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
