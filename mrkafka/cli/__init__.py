"""The command line: one thin module per command group, each parsing its options and calling
the package; errors become one line and an exit code (``base.Group``).

May import anything of mrkafka: it is the top. Each command imports what it calls when it
runs, so that ``mrkafka --help`` stays fast.
"""

from __future__ import annotations

import click

from mrkafka.cli import app, console, kafka, lookup, monitor, run, security, topic
from mrkafka.cli.base import Group, debug_option

__all__ = ["main"]


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mrkafka")
@debug_option
def main() -> None:
    """mrkafka: one MapReduce job file, run as a batch job on Ray or as a stream on Kafka."""


for command in (
    run.run,
    kafka.kafka,
    monitor.monitor,
    topic.topic,
    security.user,
    security.acl,
    app.app,
    console.produce,
    console.consume,
    lookup.lookup_command,
):
    main.add_command(command)
