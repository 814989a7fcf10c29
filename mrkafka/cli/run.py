"""``mrkafka run``: a job, batch over files or ``--stream`` over a topic."""

from __future__ import annotations

import sys
from typing import Any

import click

from mrkafka.cli.base import bootstrap_option, debug_option
from mrkafka.job import ON_ERROR
from mrkafka.settings import (
    FORMATS,
    GUARANTEES,
    RUNNERS,
    STATES,
    BatchSettings,
    RunSettings,
    StreamSettings,
)

#: How often an unbounded stream run prints its status on a terminal.
STATUS_EVERY_S = 10.0


#: Options of ``run`` whose settings field has another name.
_FIELD = {"task_timeout": "task_timeout_s", "query_timeout": "query_timeout_s", "bootstrap_servers": "bootstrap"}


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
    # Options that only a variant of the run uses.
    variants = [
        (stream and options["output"] is None, ("fmt", "overwrite", "index"), "--output"),
        (options["reducers"] == 0, ("index",), "reducers (a map-only run's parts are not sorted by key)"),
        (not stream and options["runner"] == "inline", ("mappers",), "--runner ray or local"),
        (not stream and options["runner"] not in (None, "ray"), ("ray_address",), "--runner ray"),
        (options["metrics_port"] is None, ("metrics_address",), "--metrics-port"),
        (not options["interactive_queries"], ("query_timeout",), "--interactive-queries"),
    ]
    for lacking, unused, needed in variants:
        for name in given:
            if lacking and name in unused:
                raise BadInputError(f"{flags[name]} applies only with {needed}")


@click.command(short_help="Run a job: batch over files, or --stream over a topic.")
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
@click.option(
    "--mappers",
    type=click.IntRange(min=1),
    help="Map actors (ray), or map threads (local) [default: the CPUs Ray reports, or this machine's].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=RunSettings.fmt,
    show_default=True,
    help="Part file format: key<TAB>value lines, JSON lines or Parquet.",
)
@click.option(
    "--index",
    is_flag=True,
    help="Also write each part's lookup index (OUTPUT/_index/), which makes mrkafka lookup fast.",
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
    "--metrics-address",
    default=RunSettings.metrics_address,
    show_default=True,
    help="With --metrics-port: the address /metrics listens on (0.0.0.0: every interface).",
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
    "--reduce-memory",
    help="[batch] State a reduce task holds before it spills sorted runs to disk (TMPDIR), e.g. 1GiB "
    "[default: half this machine's memory, shared by the reduce tasks].",
)
@click.option(
    "--runner",
    type=click.Choice(RUNNERS),
    help="[batch] local: one process, maps in threads; ray: actors on a local or joined Ray; inline: one "
    "process, one task at a time. The same output [default: ray with --ray-address or RAY_ADDRESS, else local].",
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
@click.option(
    "--query-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=StreamSettings.query_timeout_s,
    show_default=True,
    help="[stream] Seconds an interactive query may take before it is refused.",
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
    if fields["reduce_memory"] is not None:
        fields["reduce_memory"] = parse_size(fields["reduce_memory"])
    settings = mode(**{name: value for name, value in fields.items() if name in mode.names()})
    spec = JobSpec(
        load_job(job_file, job_name),
        parse_params(params),
        vectorize=not no_vectorize,
        on_error=on_error,
        index=options["index"],
    )
    if stream:
        from mrkafka.stream import run_stream

        report = run_stream(spec, settings, status_every_s=STATUS_EVERY_S if sys.stderr.isatty() else None)
    else:
        from mrkafka.batch import run_batch

        report = run_batch(spec, settings)
    click.echo(report.counters.format(), err=True)
    click.echo(report.format(), err=True)
