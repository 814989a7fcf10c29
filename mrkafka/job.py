"""The Job base class, and loading a job class from a file.

A job is plain methods: ``map`` yields pairs, ``reduce`` merges two values of one key,
``finish`` turns a merged value into the output value. A job may add a vectorized form,
``map_arrow`` over a whole batch of lines plus a named built-in ``aggregate``, which the
engines use where present. Importing this module must not import ray or a Kafka client: job files
import it, and loading a job has to stay fast.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mrkafka.errors import BadJobError, MrkafkaError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["AGGREGATES", "ON_ERROR", "VALUE_SERDES", "Job", "JobSpec", "StreamOptions", "load_job", "parse_params"]

#: Built-in aggregates a vectorized job may name, and the two-value merge each stands for.
#: ``count`` counts map output records: its map-side values are replaced by 1 and summed.
AGGREGATES: dict[str, Any] = {
    "sum": lambda a, b: a + b,
    "count": lambda a, b: a + b,
    "min": min,
    "max": max,
    "last": lambda a, b: b,
}
#: What a run does with a record the map raises on (Kafka Streams' processing exception handler).
ON_ERROR = ("fail", "skip")
#: The value serdes a job may name for its output topic.
VALUE_SERDES = ("long", "json")


@dataclass(frozen=True)
class StreamOptions:
    """How a stream run keeps a job's state and writes its output topic (Kafka Streams'
    ``Materialized`` and ``Produced``): declared once per job, as ``stream = StreamOptions(...)``."""

    #: Name of the state store (the changelog is ``APP-STORE-changelog``).
    store_name: str = "state"
    #: How values travel on the output topic: ``long`` (8-byte big-endian, Kafka's
    #: LongSerializer; for integer values) or ``json``.
    value_serde: str = "json"
    #: Whether the job needs input records keyed: a job whose result depends on the order of
    #: one key's records (the latest event per id) needs them in one partition. A stream run
    #: refuses a record without a key, saying how to produce keyed records.
    keyed_input: bool = False
    #: Configs for the output topic when a stream run creates it (e.g. ``cleanup.policy=compact``).
    output_topic_configs: Mapping[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        """Raises ``ValueError`` saying what is wrong."""
        if self.value_serde not in VALUE_SERDES:
            raise ValueError(f"value_serde is {self.value_serde!r}; choose {' or '.join(VALUE_SERDES)}")
        if not isinstance(self.store_name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", self.store_name):
            raise ValueError(f"store_name {self.store_name!r} must be letters, digits, '.', '_' or '-'")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in dict(self.output_topic_configs).items()):
            raise ValueError("output_topic_configs must map config names to strings")


_STREAM_OPTIONS = tuple(f.name for f in fields(StreamOptions))


class Job:
    """Base class of every mrkafka job.

    Override ``map`` and ``reduce`` (or name a built-in ``aggregate``); optionally
    ``finish``, and ``map_arrow`` for speed. ``parameters`` declares the job's ``-p``
    parameters with their defaults; values given on the command line are converted to the
    default's type and reach the job as ``self.params``.
    """

    #: Name of the job (application id and consumer group in stream mode); default: the class name.
    name: ClassVar[str | None] = None
    #: ``str`` (UTF-8, surrogateescape) or ``bytes``: what ``map`` receives as the line.
    input_type: ClassVar[type] = str
    #: Declared parameters and their defaults.
    parameters: ClassVar[Mapping[str, Any]] = {}
    #: A built-in aggregate (a key of ``AGGREGATES``) that replaces ``reduce`` on Arrow tables.
    aggregate: ClassVar[str | None] = None
    #: How a stream run keeps this job's state and writes its output topic.
    stream: ClassVar[StreamOptions] = StreamOptions()
    #: Runs write each reducer part's lookup index (``mrkafka.io.index``), as ``--index`` asks.
    index: ClassVar[bool] = False
    # Set by JobSpec.instantiate before the job's own __init__ runs (see ``map_only``).
    _map_only: bool = False

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        # Values given as text (the command line's) are converted; JobSpec ships converted ones.
        self.params: dict[str, Any] = _coerce_params(type(self), params or {})
        self.counters: dict[str, int] = {}

    @property
    def map_only(self) -> bool:
        """Whether map output is the run's output (a map-only batch run: ``--reducers 0``),
        which then keeps every record as map emits it: no combining happens. A vectorized map
        may combine within its batch (in-mapper combining) only when this is false."""
        return self._map_only

    # -- the job's methods ------------------------------------------------------------------

    def map(self, key: Any, value: Any) -> Iterable[tuple[Any, Any]]:
        """Yield ``(key, value)`` pairs for one input record. The default passes it through."""
        yield key, value

    def reduce(self, a: Any, b: Any) -> Any:
        """Merge two values of one key; must be associative and commutative."""
        if self.aggregate is not None:
            return AGGREGATES[self.aggregate](a, b)
        raise NotImplementedError(f"{type(self).__name__} defines neither reduce nor aggregate")

    def finish(self, key: Any, value: Any) -> Any:
        """Turn the merged value of a key into the value written out; ``None`` deletes the key
        (no row in part files, a tombstone on the output topic)."""
        return value

    #: Vectorized map: ``map_arrow(self, lines: pa.BinaryArray) -> pa.Table`` with columns
    #: ``key`` and ``value``, one row per map output record. ``None``: the job has none.
    map_arrow: Callable[[Job, pa.Array], pa.Table] | None = None

    # -- helpers for job code ---------------------------------------------------------------

    def increment_counter(self, name: str, amount: int = 1) -> None:
        """Add to a job counter, reported with the framework's counters."""
        self.counters[name] = self.counters.get(name, 0) + amount

    # -- what the engines ask ---------------------------------------------------------------

    @classmethod
    def job_name(cls) -> str:
        return cls.name or cls.__name__

    @classmethod
    def validate(cls) -> None:
        """Check what the class declares, when it is loaded: a mistake here would otherwise
        surface in a worker, minutes into a run. Raises ``BadJobError``."""
        name = cls.__name__
        if not cls.has_reduce() and not cls.has_map_arrow() and cls.map is Job.map:
            raise BadJobError(f"{name} overrides none of map, map_arrow, reduce")
        if cls.aggregate is not None and cls.aggregate not in AGGREGATES:
            raise BadJobError(f"{name}.aggregate is {cls.aggregate!r}; built-in aggregates are {', '.join(AGGREGATES)}")
        if cls.input_type not in (str, bytes):
            raise BadJobError(f"{name}.input_type is {cls.input_type!r}; choose str or bytes")
        for param, default in cls.parameters.items():
            if default is not None and not isinstance(default, (str, bool, int, float)):
                raise BadJobError(f"{name}.parameters[{param!r}]: a default is str, bool, int, float or None")
        for option in _STREAM_OPTIONS:
            if option in vars(cls):  # declared the way mrkafka once read it: never ignored silently
                raise BadJobError(f"{name}.{option}: declare it as stream = StreamOptions({option}=...)")
        if not isinstance(cls.stream, StreamOptions):
            raise BadJobError(f"{name}.stream must be a mrkafka.StreamOptions, not {type(cls.stream).__name__}")
        try:
            cls.stream.validate()
        except ValueError as exc:
            raise BadJobError(f"{name}.stream: {exc}") from None

    @classmethod
    def has_map_arrow(cls) -> bool:
        return cls.map_arrow is not None

    @classmethod
    def has_finish(cls) -> bool:
        return cls.finish is not Job.finish

    @classmethod
    def has_reduce(cls) -> bool:
        return cls.reduce is not Job.reduce or cls.aggregate is not None


@dataclass(frozen=True)
class JobSpec:
    """Everything a task needs to build its own instance of the job."""

    job_cls: type[Job]
    #: Parameters as given (text) when made; converted to the defaults' types, once, on creation.
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Use the job's vectorized form (``map_arrow``, ``aggregate``) where it has one.
    vectorize: bool = True
    #: A record the map raises on: ``fail`` the run, or ``skip`` it (counted in ``bad_records``
    #: and logged). Skipping maps record by record: a vectorized map cannot tell which one failed.
    on_error: str = "fail"
    #: The run writes map output as it is (a batch run with ``--reducers 0``): see ``Job.map_only``.
    map_only: bool = False
    #: Write each reducer part's lookup index: asked by the run (``--index``) or by the job
    #: (``Job.index``); a map-only run's parts have none (see ``writes_index``).
    index: bool = False

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise BadJobError(f"on_error must be one of {', '.join(ON_ERROR)}, not {self.on_error!r}")
        if self.on_error == "skip":
            object.__setattr__(self, "vectorize", False)
        object.__setattr__(self, "params", _coerce_params(self.job_cls, self.params))
        self.instantiate()  # the job's own __init__ may refuse its parameters: now, not in a worker

    @property
    def writes_index(self) -> bool:
        """Whether the run writes its parts' lookup indexes (``mrkafka.io.index``)."""
        return (self.index or self.job_cls.index) and not self.map_only

    @property
    def skip_errors(self) -> bool:
        return self.on_error == "skip"

    def instantiate(self) -> Job:
        job = self.job_cls.__new__(self.job_cls)
        job._map_only = self.map_only  # readable in the job's own __init__ too
        try:
            job.__init__(self.params)
            return job
        except MrkafkaError:
            raise
        except Exception as exc:  # the job's own __init__ refused its parameters
            raise BadJobError(f"{self.name} cannot start: {type(exc).__name__}: {exc}") from exc

    @property
    def name(self) -> str:
        return self.job_cls.job_name()


def _coerce_params(job_cls: type[Job], given: Mapping[str, str]) -> dict[str, Any]:
    params = dict(job_cls.parameters)
    for name, text in given.items():
        if name not in job_cls.parameters:
            known = ", ".join(sorted(job_cls.parameters)) or "none"
            raise BadJobError(f"{job_cls.job_name()} has no parameter {name!r} (it has: {known})")
        default = job_cls.parameters[name]
        params[name] = _convert(name, text, default)
    return params


def _convert(name: str, text: str, default: Any) -> Any:
    if not isinstance(text, str) or default is None or isinstance(default, str):
        return text
    if isinstance(default, bool):
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise BadJobError(f"parameter {name}: expected true or false, got {text!r}")
    try:
        return type(default)(text)
    except (TypeError, ValueError):
        raise BadJobError(f"parameter {name}: expected {type(default).__name__}, got {text!r}") from None


def parse_params(pairs: Iterable[str]) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``."""
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise BadJobError(f"parameter {pair!r} is not of the form name=value")
        params[name] = value
    return params


def load_job(path: str | Path, name: str | None = None) -> type[Job]:
    """Import the job file at ``path`` and return its Job subclass (``name`` picks one of several)."""
    path = Path(path)
    if not path.is_file():
        raise BadJobError(f"job file not found: {path}")
    module_name = f"mrkafka_job_{path.stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise BadJobError(f"not a Python file: {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise BadJobError(f"{path} does not import: {type(exc).__name__}: {exc}") from exc
    jobs = {
        obj.__name__: obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Job) and obj.__module__ == module_name
    }
    if name is not None:
        if name not in jobs:
            raise BadJobError(f"{path} has no Job class {name!r} (it has: {', '.join(jobs) or 'none'})")
        job_cls = jobs[name]
    elif len(jobs) == 1:
        (job_cls,) = jobs.values()
    elif not jobs:
        raise BadJobError(f"{path} defines no subclass of mrkafka.Job")
    else:
        raise BadJobError(f"{path} defines several jobs ({', '.join(jobs)}); pick one with --job")
    job_cls.validate()
    return job_cls
