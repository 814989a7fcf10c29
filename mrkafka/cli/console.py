"""``mrkafka produce`` and ``mrkafka consume``: Kafka's console producer and consumer."""

from __future__ import annotations

import sys
import time

import click

from mrkafka.cli.base import bootstrap_option, client_security, debug_option
from mrkafka.core.serdes import PRINT_FORMATS


@click.command()
@click.option("--topic", "topic_name", required=True, help="The topic to write to (it must exist).")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False), help="One record per line.")
@click.option("--key-sep", help="Split each line at its first SEP into key and value.")
@click.option("--key-field", type=int, help="With --key-sep: the key is field N (from 1), the value the whole line.")
@bootstrap_option
@debug_option
def produce(
    topic_name: str,
    input_path: str,
    key_sep: str | None,
    key_field: int | None,
    bootstrap_servers: str,
    command_config: str | None,
) -> None:
    """Write the lines of a file to a topic (acks=all, idempotent).

    \b
    Examples:
      mrkafka produce --topic lines --input README.md
      mrkafka produce --topic orders --input orders.csv --key-sep , --key-field 2
    """
    from mrkafka.devtools.console import produce_lines

    started = time.monotonic()
    count = produce_lines(
        bootstrap_servers,
        topic_name,
        input_path,
        key_sep,
        key_field=key_field,
        security=client_security(command_config),
    )
    click.echo(
        f"wrote {count} record{'' if count == 1 else 's'} to {topic_name} in {time.monotonic() - started:.2f} s",
        err=True,
    )


@click.command()
@click.option("--topic", "topic_name", required=True, help="The topic to read.")
@click.option("--from-beginning", is_flag=True, help="Start at the earliest offset, not the end.")
@click.option("--print-key", is_flag=True, help="Print each record's key, then a tab, before its value.")
@click.option("--print-partition", is_flag=True, help="Print Partition:N and a tab first.")
@click.option(
    "--value-format",
    type=click.Choice(PRINT_FORMATS),
    default="string",
    show_default=True,
    help="How values print: as text, 8-byte longs, JSON or Python bytes.",
)
@click.option(
    "--key-format",
    type=click.Choice(PRINT_FORMATS),
    default="string",
    show_default=True,
    help="How keys print (with --print-key), as --value-format.",
)
@click.option("--max-messages", type=click.IntRange(min=1), help="Stop after this many records.")
@click.option("--timeout-ms", type=click.IntRange(min=0), help="Stop when no record came for this long.")
@click.option(
    "--isolation-level",
    type=click.Choice(["read_committed", "read_uncommitted"]),
    default="read_committed",
    show_default=True,
    help="read_uncommitted also shows records of open and aborted transactions.",
)
@bootstrap_option
@debug_option
def consume(
    topic_name: str,
    from_beginning: bool,
    print_key: bool,
    print_partition: bool,
    value_format: str,
    key_format: str,
    max_messages: int | None,
    timeout_ms: int | None,
    isolation_level: str,
    bootstrap_servers: str,
    command_config: str | None,
) -> None:
    """Print the records of a topic, as kafka-console-consumer does.

    Without --max-messages or --timeout-ms it runs until stopped (Ctrl-C).

    \b
    Examples:
      mrkafka consume --topic wc-output --from-beginning --print-key --value-format long --timeout-ms 5000
    """
    from mrkafka.devtools.console import consume as run_consume

    count = run_consume(
        bootstrap_servers,
        topic_name,
        sys.stdout.buffer,
        from_beginning=from_beginning,
        max_messages=max_messages,
        timeout_ms=timeout_ms,
        print_key=print_key,
        print_partition=print_partition,
        value_format=value_format,
        key_format=key_format,
        isolation_level=isolation_level,
        security=client_security(command_config),
    )
    click.echo(f"Processed a total of {count} messages", err=True)
