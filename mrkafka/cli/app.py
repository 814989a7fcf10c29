"""``mrkafka app``: a stream application's state in Kafka."""

from __future__ import annotations

import click

from mrkafka.cli.base import bootstrap_option, client_security, debug_option
from mrkafka.settings import StreamSettings


@click.group()
def app() -> None:
    """Manage a stream application's state in Kafka."""


@app.command("reset")
@click.argument("application_id")
@click.option(
    "--state-dir",
    default=StreamSettings.state_dir,
    show_default=True,
    help="The state dir the application runs with (a run there is refused a reset).",
)
@bootstrap_option
@debug_option
def app_reset(application_id: str, state_dir: str, bootstrap_servers: str, command_config: str | None) -> None:
    """Delete the internal topics and committed offsets of APPLICATION_ID.

    As Kafka's kafka-streams-application-reset does: the application's next run starts from
    the input's beginning, with empty state. The output topic is left alone. Refused while a
    run of the application is alive: one started here with the same --state-dir (from its
    start), or one whose workers joined its groups (from anywhere).
    """
    from mrkafka.kafka.admin import Admin
    from mrkafka.stream import application

    kafka = Admin(bootstrap_servers, security=client_security(command_config))
    with application.holding(state_dir, application_id, "being reset"), kafka:
        deleted = application.reset(kafka, application_id)
    click.echo(f"reset {application_id}: deleted {', '.join(deleted) if deleted else 'nothing (no state)'}", err=True)
