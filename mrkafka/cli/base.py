"""What every command shares: errors as one line and an exit code, SIGTERM as Ctrl-C,
``--debug``, and where Kafka is and how to connect to it."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from mrkafka.errors import MrkafkaError
from mrkafka.settings import (
    BOOTSTRAP_SERVERS,
)


class Group(click.Group):
    """Runs a command; a ``MrkafkaError`` becomes one line on stderr (a traceback with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with _sigterm_as_interrupt():
                return super().invoke(ctx)
        except MrkafkaError as exc:
            self._fail(ctx, exc, f"mrkafka: error: {exc}", exc.exit_code)
        except click.UsageError as exc:  # click's own is three lines: usage, hint, error
            command = exc.ctx.command_path if exc.ctx else ctx.command_path
            self._fail(ctx, None, f"mrkafka: error: {exc.format_message()} (see: {command} --help)", exc.exit_code)
        except KeyboardInterrupt:
            self._fail(ctx, None, "mrkafka: interrupted: the command did not finish", 130)
        except BrokenPipeError:  # the reader of our output left (`mrkafka lookup ... | head`): as cat does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
            sys.exit(141)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # a bug of mrkafka's own: still one line, the traceback with --debug
            message = f"mrkafka: internal error: {type(exc).__name__}: {exc} (--debug shows the traceback)"
            self._fail(ctx, exc, message, 1)

    @staticmethod
    def _fail(ctx: click.Context, exc: BaseException | None, message: str, code: int) -> None:
        if exc is not None and (ctx.meta.get("debug") or os.environ.get("MRKAFKA_DEBUG")):
            traceback.print_exception(exc, file=sys.stderr)
        click.echo(message, err=True)
        ctx.exit(code)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a command as Ctrl-C does: a batch run removes its temporary output and
    exits 130, a bounded stream run stops its workers at once and exits 130, an unbounded one
    stops them gracefully and exits 0."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (an embedding program's): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.find_root().meta["debug"] = True
        # For the stream workers in the Ray this command starts; as it was once the command ends.
        previous = os.environ.get("MRKAFKA_DEBUG")
        os.environ["MRKAFKA_DEBUG"] = "1"
        ctx.call_on_close(lambda: _restore_env("MRKAFKA_DEBUG", previous))
    return value


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


debug_option = click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    callback=_set_debug,
    is_eager=True,
    help="Show the full traceback of an error; stream workers log their sessions, retries and Kafka client.",
)


_bootstrap_option = click.option(
    "--bootstrap-servers",
    "--bootstrap-server",  # as Kafka's own tools spell it
    "bootstrap_servers",
    envvar="MRKAFKA_BOOTSTRAP_SERVERS",
    default=BOOTSTRAP_SERVERS,
    show_default=True,
    help="Kafka brokers to connect to [env: MRKAFKA_BOOTSTRAP_SERVERS].",
)
_command_config_option = click.option(
    "--command-config",
    type=click.Path(dir_okay=False),
    envvar="MRKAFKA_COMMAND_CONFIG",
    help="A Kafka client properties file (security.protocol, sasl.*, ssl.*), as Kafka's own tools take "
    "[env: MRKAFKA_COMMAND_CONFIG].",
)


def bootstrap_option(command: Any) -> Any:
    """``--bootstrap-servers`` and ``--command-config``: where Kafka is and how to connect to it."""
    return _bootstrap_option(_command_config_option(command))


def client_security(command_config: str | None):
    from mrkafka.kafka.security import PLAINTEXT, ClientSecurity

    return ClientSecurity.read(command_config) if command_config else PLAINTEXT
