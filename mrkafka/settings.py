"""What ``mrkafka run`` can be told in each mode, with every default defined once.

``BatchSettings`` holds a batch run's options, ``StreamSettings`` a stream run's (``--stream``);
both share ``RunSettings``. The command line draws its defaults from these classes, refuses an
option that the run's mode lacks, and makes the settings once; ``run_batch`` and ``run_stream``
take that object, and the stream workers get it inside their ``StreamConfig``. A value no run
can use is refused when the settings are made, before anything starts. Importing this module
stays light: the command line imports it to build its options.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from mrkafka.errors import BadInputError

__all__ = [
    "AT_LEAST_ONCE",
    "BOOTSTRAP_SERVERS",
    "EXACTLY_ONCE",
    "FORMATS",
    "GUARANTEES",
    "KAFKA_PORT",
    "RUNNERS",
    "STATES",
    "BatchSettings",
    "RunSettings",
    "StreamSettings",
]

#: The client port of the first broker ``mrkafka kafka up`` starts, unless told otherwise.
KAFKA_PORT = 9092
#: Where every Kafka command looks for brokers unless told: where ``mrkafka kafka up`` starts one.
BOOTSTRAP_SERVERS = f"127.0.0.1:{KAFKA_PORT}"
FORMATS = ("text", "jsonl", "parquet")
RUNNERS = ("ray", "local", "inline")
STATES = ("memory", "rocksdb")
EXACTLY_ONCE, AT_LEAST_ONCE = "exactly-once", "at-least-once"
GUARANTEES = (EXACTLY_ONCE, AT_LEAST_ONCE)


def _choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BadInputError(f"{option} must be one of {', '.join(choices)}, not {value!r}")


@dataclass(frozen=True)
class RunSettings:
    """What both modes take."""

    #: Output directory (stream: with ``until_end``, the final state as part files).
    output: str | Path | None = None
    #: Reduce partitions: part files, and in stream mode repartition topic partitions.
    reducers: int = 2
    #: Map actors; ``None``: one per CPU Ray reports (stream: at most one per input partition).
    mappers: int | None = None
    fmt: str = "text"
    overwrite: bool = False
    #: Join this Ray cluster instead of starting one.
    ray_address: str | None = None
    #: Serve Prometheus metrics at ``/metrics`` on this port while the run lasts (0: a free one).
    metrics_port: int | None = None
    #: Write the run's final metrics here, in the Prometheus text format.
    metrics_file: str | None = None
    #: Where ``/metrics`` listens: loopback, unless the user asks for more.
    metrics_address: str = "127.0.0.1"

    def __post_init__(self) -> None:
        _choice("--format", self.fmt, FORMATS)
        if self.metrics_file is not None:
            directory = os.path.dirname(os.path.abspath(self.metrics_file))
            if not os.path.isdir(directory):
                raise BadInputError(f"--metrics-file {self.metrics_file}: no such directory {directory}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise BadInputError(f"--metrics-port must be 0 to 65535, got {self.metrics_port}")
        if self.reducers < 0:
            raise BadInputError(f"--reducers must be 0 or more, got {self.reducers}")
        if self.mappers is not None and self.mappers < 1:
            raise BadInputError(f"--mappers must be 1 or more, got {self.mappers}")

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


@dataclass(frozen=True)
class BatchSettings(RunSettings):
    """A batch run: files in, part files out."""

    inputs: tuple[str, ...] = ()
    #: Split size: a file is cut into line-aligned blocks of about this many bytes.
    block_size: int = 128 * 1024 * 1024
    #: ``RUNNERS``; ``None``: ray if a Ray cluster is named (``ray_address``, ``RAY_ADDRESS``),
    #: else local (on one machine, threads map as fast as Ray's actors without Ray's start).
    runner: str | None = None
    #: Bytes of state a reduce task holds before it spills to disk; ``None``: a fair share of
    #: this machine's memory (``mrkafka.batch.spill.fair_share``).
    reduce_memory: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "inputs", tuple(str(i) for i in self.inputs))  # a list given is kept as given
        if self.runner is None:
            joins = self.ray_address or os.environ.get("RAY_ADDRESS")
            object.__setattr__(self, "runner", "ray" if joins else "local")
        _choice("--runner", self.runner, RUNNERS)
        if not self.inputs:
            raise BadInputError("no --input given")
        if not self.output:
            raise BadInputError("no --output given")
        if self.block_size <= 0:
            raise BadInputError(f"--block-size must be positive, got {self.block_size}")


@dataclass(frozen=True)
class StreamSettings(RunSettings):
    """A stream run: an input topic in, an output topic (and with ``until_end`` part files) out."""

    bootstrap: str = BOOTSTRAP_SERVERS
    #: A Kafka client properties file: how the driver and every worker connect (TLS, SASL).
    command_config: str | None = None
    input_topic: str = ""
    #: Default ``APP-output`` (see ``resolved``).
    output_topic: str | None = None
    #: Consumer group and prefix of the internal topics; default the job's name (see ``resolved``).
    application_id: str | None = None
    #: Stop at the input's end offsets taken at start.
    until_end: bool = False
    state: str = "memory"
    state_dir: str = "~/.cache/mrkafka/state"
    commit_interval_ms: int = 1000
    #: How long a worker or the driver retries a failing Kafka before the run fails (Kafka
    #: Streams' ``task.timeout.ms``).
    task_timeout_s: float = 300.0
    guarantee: str = EXACTLY_ONCE
    #: Serve ``mrkafka lookup --application-id`` from the reducers' state while the run lasts
    #: (Kafka Streams' ``application.server``: interactive queries from other processes).
    interactive_queries: bool = False
    #: How long an interactive query may scan before it is refused.
    query_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice("--state", self.state, STATES)
        _choice("--guarantee", self.guarantee, GUARANTEES)
        if not self.input_topic:
            raise BadInputError("--stream needs --input-topic")
        if self.reducers < 1:
            raise BadInputError(f"a stream run needs --reducers 1 or more, got {self.reducers}")
        if self.output is not None and not self.until_end:
            raise BadInputError("--output needs --until-end: an unbounded stream has no final state to write")
        if self.commit_interval_ms < 1:
            raise BadInputError(f"--commit-interval-ms must be 1 or more, got {self.commit_interval_ms}")
        if self.task_timeout_s < 0:
            raise BadInputError(f"--task-timeout must be 0 or more, got {self.task_timeout_s}")

    def resolved(self, job_name: str) -> StreamSettings:
        """These settings with the defaults that depend on the job filled in: the application id
        (the job's name) and the output topic (``APP-output``)."""
        app = self.application_id or job_name
        return replace(self, application_id=app, output_topic=self.output_topic or f"{app}-output")
