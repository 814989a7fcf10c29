"""``mrkafka user`` and ``mrkafka acl``: SCRAM users and ACLs, named as Kafka's tools name them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from mrkafka.cli.base import bootstrap_option, client_security, debug_option
from mrkafka.kafka.security import ACL_OPERATIONS


def _security_admin(bootstrap_servers: str, command_config: str | None):
    from mrkafka.kafka.acl import SecurityAdmin

    return SecurityAdmin(bootstrap_servers, security=client_security(command_config))


@click.group()
def user() -> None:
    """Manage SCRAM users, the logins of a sasl_ssl cluster.

    As kafka-configs --entity-type users does, through the admin API."""


@user.command("add")
@click.argument("name")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False),
    help="Read the password from this file's first line [default: ask on the terminal].",
)
@click.option(
    "--mechanism",
    type=click.Choice(["SCRAM-SHA-512", "SCRAM-SHA-256"]),
    default="SCRAM-SHA-512",
    show_default=True,
    help="The SCRAM mechanism the password is for.",
)
@click.option("--update", is_flag=True, help="Set the password of a user that exists.")
@bootstrap_option
@debug_option
def user_add(
    name: str,
    password_file: str | None,
    mechanism: str,
    update: bool,
    bootstrap_servers: str,
    command_config: str | None,
) -> None:
    """Create user NAME, or with --update set its password.

    The password is never taken from the command line, where ps would show it. Setting the
    password of the user --command-config logs in as rewrites that file in the same step."""
    from mrkafka.errors import BadInputError
    from mrkafka.kafka.security import checked_name, with_password, write_private

    checked_name(name, "user")
    password = _password(name, password_file)
    admin = _security_admin(bootstrap_servers, command_config)
    exists = mechanism in admin.list_users().get(name, [])
    if exists and not update:
        raise BadInputError(f"user {name} exists: pass --update to set its password")
    own = command_config is not None and client_security(command_config).username == name
    if not own:
        admin.add_user(name, password, mechanism)
    else:  # the new settings are written beside the old, and replace them once the broker took the password
        settings = Path(command_config)
        written = settings.with_name(f".{settings.name}.new")
        write_private(written, with_password(settings, password))
        try:
            admin.add_user(name, password, mechanism)
        except BaseException:
            written.unlink()
            raise
        written.replace(settings)
        click.echo(f"{command_config} now holds the new password", err=True)
    click.echo(f"user {name} has a {mechanism} password", err=True)


def _password(name: str, password_file: str | None) -> str:
    """The password for ``name``: the first line of ``password_file``, or asked on the terminal."""
    from mrkafka.errors import BadInputError

    if password_file:
        try:
            password = Path(password_file).read_text().splitlines()[0] if Path(password_file).stat().st_size else ""
        except OSError as exc:
            raise BadInputError(f"cannot read {password_file}: {exc.strerror}") from None
    elif not sys.stdin.isatty():
        raise BadInputError(f"no terminal to ask for {name}'s password on: give it with --password-file FILE")
    else:
        password = click.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True, err=True)
    if not password:
        raise BadInputError(f"an empty password for {name}")
    return password


@user.command("list")
@bootstrap_option
@debug_option
def user_list(bootstrap_servers: str, command_config: str | None) -> None:
    """Print each SCRAM user and its mechanisms."""
    for name, mechanisms in _security_admin(bootstrap_servers, command_config).list_users().items():
        click.echo(f"{name}\t{','.join(mechanisms)}")


@user.command("delete")
@click.argument("name")
@bootstrap_option
@debug_option
def user_delete(name: str, bootstrap_servers: str, command_config: str | None) -> None:
    """Delete user NAME's credentials (its ACLs stay, as in Kafka)."""
    from mrkafka.errors import BadInputError

    if not _security_admin(bootstrap_servers, command_config).delete_user(name):
        raise BadInputError(f"no user {name}")
    click.echo(f"deleted user {name}", err=True)


def acl_options(command: Any) -> Any:
    """The binding options of ``acl add`` and ``acl remove``, named as kafka-acls names them."""
    for option in reversed(
        [
            click.option("--principal", required=True, help="Who: User:NAME (a SCRAM user, or a certificate's CN)."),
            click.option(
                "--operation",
                "operations",
                multiple=True,
                required=True,
                type=click.Choice(ACL_OPERATIONS, case_sensitive=False),
                help="What (repeatable).",
            ),
            click.option("--topic", help="On this topic (or, with --prefixed, the topics starting with it)."),
            click.option("--group", help="On this consumer group (or prefix)."),
            click.option("--transactional-id", help="On this transactional id (or prefix)."),
            click.option("--cluster", is_flag=True, help="On the cluster (creating topics, ...)."),
            click.option("--prefixed", is_flag=True, help="The name is a prefix (Kafka's PREFIXED pattern)."),
            click.option("--deny", is_flag=True, help="Deny instead of allow (a deny wins over any allow)."),
            click.option("--host", default="*", show_default=True, help="From this host only."),
        ]
    ):
        command = option(command)
    return command


def _acls(
    principal: str,
    operations: tuple[str, ...],
    topic: str | None,
    group: str | None,
    transactional_id: str | None,
    cluster: bool,
    prefixed: bool,
    deny: bool,
    host: str,
) -> list:
    from mrkafka.errors import BadInputError
    from mrkafka.kafka.acl import Acl

    named = {"topic": topic, "group": group, "transactional-id": transactional_id, "cluster": "" if cluster else None}
    resources = [(resource, name) for resource, name in named.items() if name is not None]
    if len(resources) != 1:
        raise BadInputError("give one resource: --topic, --group, --transactional-id or --cluster")
    (resource, name), spelled = resources[0], {op.lower(): op for op in ACL_OPERATIONS}
    return [Acl(principal, spelled[op.lower()], resource, name, prefixed, deny, host) for op in operations]


@click.group(short_help="Manage ACLs: who may do what on a topic, group or the cluster.")
def acl() -> None:
    """Manage ACLs: who may do what on which topic, group or the cluster.

    Named as kafka-acls names them."""


@acl.command("add")
@acl_options
@bootstrap_option
@debug_option
def acl_add(bootstrap_servers: str, command_config: str | None, **binding: Any) -> None:
    """Allow (or --deny) a principal operations on a resource.

    \b
    Examples:
      mrkafka acl add --principal User:alice --operation Read --topic lines --command-config admin.properties
      mrkafka acl add --principal User:wc --operation All --topic wc --prefixed --command-config admin.properties
    """
    acls = _acls(**binding)
    _security_admin(bootstrap_servers, command_config).add_acls(acls)
    for added in acls:
        click.echo(f"added\t{added.format()}", err=True)


@acl.command("list")
@click.option("--principal", help="Only this principal's ACLs.")
@bootstrap_option
@debug_option
def acl_list(principal: str | None, bootstrap_servers: str, command_config: str | None) -> None:
    """Print the ACLs, one per line.

    Principal, ALLOW or DENY, operation, resource type, name, literal or prefixed, host."""
    for found in _security_admin(bootstrap_servers, command_config).list_acls(principal):
        click.echo(found.format())


@acl.command("remove")
@acl_options
@bootstrap_option
@debug_option
def acl_remove(bootstrap_servers: str, command_config: str | None, **binding: Any) -> None:
    """Remove the ACLs the options name exactly."""
    removed = _security_admin(bootstrap_servers, command_config).remove_acls(_acls(**binding))
    for gone in removed:
        click.echo(f"removed\t{gone.format()}", err=True)
    if not removed:
        click.echo("no such ACL", err=True)
