"""The command line: parse, call, and turn errors into one line and an exit code."""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any

import click

from mrkafka.errors import MrkafkaError

__all__ = ["main"]


class _Group(click.Group):
    """Runs a command; a ``MrkafkaError`` becomes one line on stderr (a traceback with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MrkafkaError as exc:
            self._fail(ctx, exc, f"mrkafka: error: {exc}", exc.exit_code)
        except KeyboardInterrupt:
            self._fail(ctx, None, "mrkafka: interrupted", 130)

    @staticmethod
    def _fail(ctx: click.Context, exc: BaseException | None, message: str, code: int) -> None:
        if exc is not None and (ctx.meta.get("debug") or os.environ.get("MRKAFKA_DEBUG")):
            traceback.print_exception(exc, file=sys.stderr)
        click.echo(message, err=True)
        ctx.exit(code)


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.find_root().meta["debug"] = True
    return value


debug_option = click.option(
    "--debug", is_flag=True, expose_value=False, callback=_set_debug, is_eager=True,
    help="Show the full traceback of an error.",
)  # fmt: skip


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mrkafka")
@debug_option
def main() -> None:
    """mrkafka: one MapReduce job file, run as a batch job on Ray or as a stream on Kafka."""


@main.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--input", "inputs", multiple=True, help="Input file, directory or glob (repeatable).")
@click.option("--output", type=click.Path(file_okay=False), help="Output directory.")
@click.option("--job", "job_name", help="The Job class to run, where the file has several.")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help="A job parameter (repeatable).")
@click.option("--reducers", type=int, default=2, show_default=True, help="Reducers; 0 makes a map-only job.")
@click.option("--mappers", type=int, help="Map actors [default: the CPUs Ray reports].")
@click.option("--block-size", default="128MiB", show_default=True, help="Split size, e.g. 64KiB, 128MB, 1GiB.")
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl", "parquet"]), default="text", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing output directory once the job succeeds.")
@click.option("--runner", type=click.Choice(["ray", "inline"]), default="ray", show_default=True)
@click.option("--ray-address", envvar="RAY_ADDRESS", help="Join this Ray cluster instead of starting one.")
@click.option("--no-vectorize", is_flag=True, help="Use the job's per-record map and reduce only.")
@debug_option
def run(
    job_file: str,
    inputs: tuple[str, ...],
    output: str | None,
    job_name: str | None,
    params: tuple[str, ...],
    reducers: int,
    mappers: int | None,
    block_size: str,
    fmt: str,
    overwrite: bool,
    runner: str,
    ray_address: str | None,
    no_vectorize: bool,
) -> None:
    """Run JOB_FILE as a batch MapReduce over --input into --output."""
    from mrkafka.batch import JobSpec, run_batch
    from mrkafka.errors import BadInputError
    from mrkafka.job import load_job, parse_params
    from mrkafka.splits import parse_size

    if not inputs:
        raise BadInputError("no --input given")
    if not output:
        raise BadInputError("no --output given")
    job_cls = load_job(job_file, job_name)
    spec = JobSpec(job_cls, parse_params(params), vectorize=not no_vectorize)
    spec.instantiate()  # check the parameters before anything starts
    started = time.monotonic()
    counters = run_batch(
        spec,
        inputs,
        output,
        reducers=reducers,
        block_size=parse_size(block_size),
        fmt=fmt,
        overwrite=overwrite,
        runner=runner,
        mappers=mappers,
        ray_address=ray_address,
    )
    elapsed = time.monotonic() - started
    from mrkafka import output as out

    read = counters.get(out.BYTES_READ)
    click.echo(counters.format(), err=True)
    click.echo(
        f"{job_cls.job_name()}: {read / 1e6:.1f} MB in {elapsed:.2f} s "
        f"({read / 1e6 / max(elapsed, 1e-9):.1f} MB/s) -> {output}",
        err=True,
    )
