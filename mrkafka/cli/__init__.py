"""The command line: parse, call, and turn errors into one line and an exit code."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from mrkafka.core.serdes import PRINT_FORMATS
from mrkafka.errors import MrkafkaError
from mrkafka.job import ON_ERROR
from mrkafka.kafka.security import ACL_OPERATIONS, MODES
from mrkafka.settings import (
    BOOTSTRAP_SERVERS,
    FORMATS,
    GUARANTEES,
    KAFKA_PORT,
    RUNNERS,
    STATES,
    BatchSettings,
    RunSettings,
    StreamSettings,
)

__all__ = ["main"]

#: How often an unbounded stream run prints its status on a terminal.
STATUS_EVERY_S = 10.0


class _Group(click.Group):
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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mrkafka")
@debug_option
def main() -> None:
    """mrkafka: one MapReduce job file, run as a batch job on Ray or as a stream on Kafka."""
    # Client libraries log every retry; what a user needs reaches them as one error line.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    logging.getLogger("aiokafka").propagate = False


_bootstrap_option = click.option(
    "--bootstrap-servers",
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


def _security(command_config: str | None):
    from mrkafka.kafka.security import PLAINTEXT, ClientSecurity

    return ClientSecurity.read(command_config) if command_config else PLAINTEXT


#: Options of ``run`` whose settings field has another name.
_FIELD = {"task_timeout": "task_timeout_s", "bootstrap_servers": "bootstrap"}


def _check_run_options(ctx: click.Context, stream: bool, options: dict[str, Any]) -> None:
    """Refuse, with one line, an option given on the command line that the run does not use."""
    from mrkafka.errors import BadInputError

    flags = {param.name: param.opts[0] for param in ctx.command.params}
    given = [name for name in options if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE]
    mode, other = (StreamSettings, BatchSettings) if stream else (BatchSettings, StreamSettings)
    for name in given:
        field = _FIELD.get(name, name)
        if field not in mode.names() and field in other.names():
            where = "without --stream" if stream else "with --stream"
            raise BadInputError(f"{flags[name]} applies only to {'batch' if stream else 'stream'} runs ({where})")
    # Options of the mode that only one of its variants uses.
    if stream and options["output"] is None:
        unused, needed = ("fmt", "overwrite"), "--output"
    elif not stream and options["runner"] == "inline":
        unused, needed = ("mappers", "ray_address"), "--runner ray"
    else:
        return
    for name in given:
        if name in unused:
            raise BadInputError(f"{flags[name]} applies only with {needed}")


@main.command(short_help="Run a job: batch over files, or --stream over a topic.")
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--job", "job_name", help="The Job class to run, where the file has several.")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help="A job parameter (repeatable).")
@click.option("--no-vectorize", is_flag=True, help="Use the job's per-record map and reduce only.")
@click.option(
    "--on-error",
    type=click.Choice(ON_ERROR),
    default=ON_ERROR[0],
    show_default=True,
    help="A record the map raises on: fail the run, or skip it (counted in bad_records, logged "
    "with its position; maps record by record).",
)
@click.option("--output", type=click.Path(file_okay=False), help="Output directory (with --stream: needs --until-end).")
@click.option(
    "--reducers",
    type=click.IntRange(min=0),
    default=RunSettings.reducers,
    show_default=True,
    help="Reducers; 0 makes a map-only batch job.",
)
@click.option("--mappers", type=click.IntRange(min=1), help="Map actors [default: the CPUs Ray reports].")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=RunSettings.fmt,
    show_default=True,
    help="Part file format: key<TAB>value lines, JSON lines or Parquet.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output directory once the job succeeds.")
@click.option("--ray-address", envvar="RAY_ADDRESS", help="Join this Ray cluster instead of starting one.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    envvar="MRKAFKA_METRICS_PORT",
    help="Serve Prometheus metrics at /metrics on this port while the run lasts (0: a free one, printed).",
)
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False),
    help="Write the run's final metrics to this file, in the Prometheus text format.",
)
@click.option("--input", "inputs", multiple=True, help="[batch] Input file, directory or glob (repeatable).")
@click.option(
    "--block-size",
    default=f"{BatchSettings.block_size >> 20}MiB",
    show_default=True,
    help="[batch] Split size, e.g. 64KiB, 128MB, 1GiB.",
)
@click.option(
    "--runner",
    type=click.Choice(RUNNERS),
    default=BatchSettings.runner,
    show_default=True,
    help="[batch] ray: actors on a local or joined Ray; inline: one process, the same output.",
)
@click.option("--stream", is_flag=True, help="Run as a streaming aggregation over --input-topic.")
@click.option("--input-topic", help="[stream] The topic to consume.")
@click.option("--output-topic", help="[stream] The topic to write finish(key, state) to [default: APP-output].")
@click.option("--application-id", help="[stream] Consumer group and prefix of internal topics [default: job name].")
@click.option("--until-end", is_flag=True, help="[stream] Stop at the input's end offsets taken at start.")
@click.option(
    "--state",
    type=click.Choice(STATES),
    default=StreamSettings.state,
    show_default=True,
    help="[stream] Where reducers keep state (both backed by the changelog topic).",
)
@click.option("--state-dir", default=StreamSettings.state_dir, show_default=True, help="[stream] RocksDB files.")
@click.option(
    "--commit-interval-ms",
    type=click.IntRange(min=1),
    default=StreamSettings.commit_interval_ms,
    show_default=True,
    help="[stream] How often offsets are committed and changed keys written.",
)
@click.option(
    "--task-timeout",
    type=click.FloatRange(min=0),
    default=StreamSettings.task_timeout_s,
    show_default=True,
    help="[stream] Seconds a worker or the driver retries a failing Kafka before the run fails.",
)
@click.option(
    "--guarantee",
    type=click.Choice(GUARANTEES),
    default=StreamSettings.guarantee,
    show_default=True,
    help="[stream] Kafka Streams' processing.guarantee.",
)
@click.option(
    "--interactive-queries",
    is_flag=True,
    help="[stream] Serve mrkafka lookup --application-id from the reducers' state.",
)
@bootstrap_option
@debug_option
@click.pass_context
def run(
    ctx: click.Context,
    job_file: str,
    job_name: str | None,
    params: tuple[str, ...],
    no_vectorize: bool,
    on_error: str,
    stream: bool,
    **options: Any,
) -> None:
    """Run JOB_FILE as a batch MapReduce over --input into --output, or with --stream over a topic.

    An option marked [batch] or [stream] is refused in the other mode.

    \b
    Examples:
      mrkafka run jobs/wordcount.py --input docs/ --output out/
      mrkafka run jobs/wordcount.py --input big.txt --output out/ --reducers 4 --format parquet
      mrkafka run jobs/wordcount.py --stream --input-topic lines --application-id wc
      mrkafka run jobs/wordcount.py --stream --input-topic lines --until-end --output out/
    """
    from mrkafka.io.splits import parse_size
    from mrkafka.job import JobSpec, load_job, parse_params

    _check_run_options(ctx, stream, options)
    mode = StreamSettings if stream else BatchSettings
    fields = {_FIELD.get(name, name): value for name, value in options.items()}
    fields["block_size"] = parse_size(fields["block_size"])
    settings = mode(**{name: value for name, value in fields.items() if name in mode.names()})
    spec = JobSpec(load_job(job_file, job_name), parse_params(params), vectorize=not no_vectorize, on_error=on_error)
    if stream:
        from mrkafka.stream import run_stream

        report = run_stream(spec, settings, status_every_s=STATUS_EVERY_S if sys.stderr.isatty() else None)
    else:
        from mrkafka.batch import run_batch

        report = run_batch(spec, settings)
    click.echo(report.counters.format(), err=True)
    click.echo(report.format(), err=True)


# -- Kafka ------------------------------------------------------------------------------------

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
):
    """The cluster of ``data_dir``: what was started there before (unless ``brokers``,
    ``port``, ``metrics_port`` or ``security`` say otherwise), or, with ``new_ok``, a new one."""
    from mrkafka.devtools.launcher import Cluster, default_data_dir
    from mrkafka.errors import SetupError

    directory = Path(data_dir) if data_dir else default_data_dir()
    saved = Cluster.load(directory)
    if saved is not None:  # what was started there before, unless told otherwise
        brokers, port = brokers or saved.brokers, port or saved.port
        metrics_port = metrics_port if metrics_port is not None else saved.metrics_port
        security = security or saved.security
    elif not new_ok:
        raise SetupError(f"no Kafka was started in {directory} (start one with: mrkafka kafka up)")
    return Cluster(
        directory, brokers or 1, port or KAFKA_PORT, metrics_port=metrics_port, security=security or "plaintext"
    )


@main.group(short_help="Run Apache Kafka (KRaft) here, for development and tests.")
def kafka() -> None:
    """Run Apache Kafka (KRaft) on this machine, for development, tests and demos."""


@kafka.command()
@click.option(
    "--brokers",
    type=click.Choice(["1", "3"]),
    help="Broker+controller nodes: 1, or 3 for replication [default: 1, or what DIR held].",
)
@click.option(
    "--port",
    type=click.IntRange(1024, 65535 - 200 - 2),
    help="Client port of node 0, controllers 100 above, a secured cluster's inter-broker listeners 200 "
    "above [default: 9092, or what DIR held].",
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
    brokers: str | None, port: int | None, metrics_port: int | None, security: str | None, data_dir: str | None
) -> None:
    """Fetch Kafka (once), start it in the background and print the bootstrap servers.

    \b
    Examples:
      mrkafka kafka up                       # one broker on 127.0.0.1:9092
      mrkafka kafka up --brokers 3 --port 29092 --data-dir /tmp/k3
      mrkafka kafka up --metrics-port 7071   # metrics at http://127.0.0.1:7071/metrics
      mrkafka kafka up --security sasl_ssl   # then: --command-config ~/.cache/mrkafka/broker/admin.properties
    """
    cluster = _cluster(
        data_dir, int(brokers) if brokers else None, port, new_ok=True, metrics_port=metrics_port, security=security
    )
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
    """Say which brokers run, with their pids and ports."""
    cluster = _cluster(data_dir)
    running = 0
    for node, pid in cluster.status():
        state = f"running (pid {pid})" if pid else "stopped"
        click.echo(f"node {node.node_id}: 127.0.0.1:{node.port} {state}  logs: {node.log}")
        running += pid is not None
    if not running:
        sys.exit(1)


@main.group(short_help="Run Prometheus here, scraping brokers and runs that serve metrics.")
def monitor() -> None:
    """A real Prometheus server that scrapes each `kafka up --metrics-port` cluster and each run
    with --metrics-port while it lasts (they register in ~/.cache/mrkafka/monitor/targets, or
    $MRKAFKA_MONITOR_DIR/targets)."""


@monitor.command("up")
@click.option("--port", type=click.IntRange(1, 65535), default=9090, show_default=True, help="Prometheus' port.")
@click.option("--scrape-interval", default="5s", show_default=True, help="How often targets are scraped.")
@debug_option
def monitor_up(port: int, scrape_interval: str) -> None:
    """Start Prometheus (needs `prometheus` on PATH) and print its URL."""
    from mrkafka.devtools.monitor import Monitor

    click.echo(Monitor.default().up(port, scrape_interval))


@monitor.command("down")
@debug_option
def monitor_down() -> None:
    """Stop the Prometheus that `monitor up` started (by its recorded pid)."""
    from mrkafka.devtools.monitor import Monitor

    stopped = Monitor.default().down()
    click.echo("stopped prometheus" if stopped else "no prometheus was running", err=True)


@monitor.command("status")
@debug_option
def monitor_status() -> None:
    """Say where Prometheus runs and what it scrapes (exit 1: it does not run)."""
    from mrkafka.devtools.monitor import Monitor

    found = Monitor.default()
    pid = found.pid()
    click.echo(f"prometheus: {found.url} running (pid {pid})" if pid else "prometheus: stopped")
    for target in found.targets():
        click.echo(f"  {target}")
    if pid is None:
        sys.exit(1)


@main.group()
def topic() -> None:
    """Create, list, describe, alter and delete topics."""


@topic.command("create")
@click.argument("name")
@click.option("--partitions", type=click.IntRange(min=1), default=1, show_default=True, help="Partition count.")
@click.option(
    "--replication-factor",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Copies of each partition (at most the broker count).",
)
@click.option("--config", "configs", multiple=True, metavar="KEY=VALUE", help="A topic config (repeatable).")
@bootstrap_option
@debug_option
def topic_create(
    name: str,
    partitions: int,
    replication_factor: int,
    configs: tuple[str, ...],
    bootstrap_servers: str,
    command_config: str | None,
) -> None:
    """Create topic NAME."""
    from mrkafka.errors import BadInputError
    from mrkafka.kafka import admin

    settings = {}
    for item in configs:
        key, sep, value = item.partition("=")
        if not sep:
            raise BadInputError(f"--config {item!r} is not of the form key=value")
        settings[key] = value
    admin.create_topic(
        bootstrap_servers, name, partitions, replication_factor, settings, security=_security(command_config)
    )
    click.echo(f"created topic {name}", err=True)


@topic.command("list")
@click.option("--internal", is_flag=True, help="Also list Kafka's internal topics.")
@bootstrap_option
@debug_option
def topic_list(internal: bool, bootstrap_servers: str, command_config: str | None) -> None:
    """List the topics."""
    from mrkafka.kafka import admin

    for name in admin.list_topics(bootstrap_servers, internal, security=_security(command_config)):
        click.echo(name)


@topic.command("describe")
@click.argument("name")
@bootstrap_option
@debug_option
def topic_describe(name: str, bootstrap_servers: str, command_config: str | None) -> None:
    """Partitions (leader, replicas, ISR) and configs of topic NAME."""
    from mrkafka.kafka import admin

    info = admin.describe_topic(bootstrap_servers, name, security=_security(command_config))
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
@click.option("--partitions", type=click.IntRange(min=1), required=True, help="The new, larger, partition count.")
@bootstrap_option
@debug_option
def topic_alter(name: str, partitions: int, bootstrap_servers: str, command_config: str | None) -> None:
    """Raise the partition count of topic NAME."""
    from mrkafka.kafka import admin

    admin.alter_partitions(bootstrap_servers, name, partitions, security=_security(command_config))
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

    with admin.Admin(bootstrap_servers, security=_security(command_config)) as kafka:
        if not force:
            application.refuse_deleting(kafka, name)
        kafka.delete_topic(name)
    click.echo(f"deleted topic {name}", err=True)


def _security_admin(bootstrap_servers: str, command_config: str | None):
    from mrkafka.kafka.acl import SecurityAdmin

    return SecurityAdmin(bootstrap_servers, _security(command_config))


@main.group()
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
@bootstrap_option
@debug_option
def user_add(
    name: str, password_file: str | None, mechanism: str, bootstrap_servers: str, command_config: str | None
) -> None:
    """Create user NAME, or set its password.

    The password is never taken from the command line, where ps would show it."""
    from mrkafka.errors import BadInputError

    if password_file:
        try:
            password = Path(password_file).read_text().splitlines()[0] if Path(password_file).stat().st_size else ""
        except OSError as exc:
            raise BadInputError(f"cannot read {password_file}: {exc.strerror}") from None
    else:
        password = click.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True, err=True)
    if not password:
        raise BadInputError(f"an empty password for {name}")
    _security_admin(bootstrap_servers, command_config).add_user(name, password, mechanism)
    click.echo(f"user {name} has a {mechanism} password", err=True)


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
    resources = [(kind, name) for kind, name in named.items() if name is not None]
    if len(resources) != 1:
        raise BadInputError("give one resource: --topic, --group, --transactional-id or --cluster")
    (kind, name), spelled = resources[0], {op.lower(): op for op in ACL_OPERATIONS}
    return [Acl(principal, spelled[op.lower()], kind, name, prefixed, deny, host) for op in operations]


@main.group(short_help="Manage ACLs: who may do what on a topic, group or the cluster.")
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


@main.group()
def app() -> None:
    """Manage a stream application's state in Kafka."""


@app.command("reset")
@click.argument("application_id")
@bootstrap_option
@debug_option
def app_reset(application_id: str, bootstrap_servers: str, command_config: str | None) -> None:
    """Delete the internal topics and committed offsets of APPLICATION_ID.

    As Kafka's kafka-streams-application-reset does: the application's next run starts from
    the input's beginning, with empty state. The output topic is left alone.
    """
    from mrkafka.kafka.admin import Admin
    from mrkafka.stream import application

    with Admin(bootstrap_servers, security=_security(command_config)) as kafka:
        deleted = application.reset(kafka, application_id)
    click.echo(f"reset {application_id}: deleted {', '.join(deleted) if deleted else 'nothing (no state)'}", err=True)


@main.command()
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
        bootstrap_servers, topic_name, input_path, key_sep, key_field=key_field, security=_security(command_config)
    )
    click.echo(f"wrote {count} records to {topic_name} in {time.monotonic() - started:.2f} s", err=True)


@main.command()
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
        security=_security(command_config),
    )
    click.echo(f"Processed a total of {count} messages", err=True)


@main.command("lookup", short_help="Print the value of a key in a finished output, or a running application.")
@click.argument("where_and_key", nargs=-1, required=True, metavar="[OUTPUT_DIR] KEY")
@click.option("--fuzzy", type=click.IntRange(0, 10), default=0, help="Also keys within N edits (Levenshtein).")
@click.option("--limit", type=click.IntRange(1), help="With --fuzzy: print only the best N keys [default: all].")
@click.option("--application-id", help="Ask this running stream application's state instead of an output.")
@click.option(
    "--state-dir",
    default=StreamSettings.state_dir,
    show_default=True,
    help="With --application-id: the state dir the application runs with.",
)
@debug_option
def lookup_command(
    where_and_key: tuple[str, ...], fuzzy: int, limit: int | None, application_id: str | None, state_dir: str
) -> None:
    """Print the value of KEY in a finished output (OUTPUT_DIR), or in the current state of a
    running stream application (--application-id APP, Kafka Streams' interactive queries):
    for prefix_index, its completions; for word count, its count.

    Lines are KEY<TAB>VALUE; a list value (completions) prints one line per item. With
    --fuzzy N every key within N edits is printed, nearest first, then the most frequent.

    \b
    Examples:
      mrkafka lookup out/prefix Mukesh
      mrkafka lookup out/prefix packge --fuzzy 2
      mrkafka lookup --application-id wc kafka
    """
    if application_id is not None:
        if len(where_and_key) != 1:
            raise click.UsageError("with --application-id, give only KEY")
        from mrkafka.stream.queries import query

        (key,) = where_and_key
        found = query(application_id, state_dir, key, fuzzy)[:limit]
    else:
        if len(where_and_key) != 2:
            raise click.UsageError("give OUTPUT_DIR and KEY (or --application-id APP and KEY)")
        from mrkafka.io.lookup import lookup

        output_dir, key = where_and_key
        found = lookup(output_dir, key, fuzzy, limit)
    for stored, _, value in found:
        for item in value if isinstance(value, list) else [value]:
            text = "\t".join(map(str, item)) if isinstance(item, list) else str(item)
            click.echo(f"{stored}\t{text}")
    if not found:
        click.echo(f"no key {key!r}" + (f" within {fuzzy} edits" if fuzzy else ""), err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
