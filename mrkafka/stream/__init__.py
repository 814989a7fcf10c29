"""The stream engine: a job as a Kafka Streams-style aggregation, on Ray actors.

    input topic --group APP--> map workers --murmur2--> APP-repartition (R partitions)
        --> R reduce workers: state store + APP-STORE-changelog (compacted) --> output topic

``driver.run_stream`` runs one application: it makes the topics (``application``), the
workers' ``config``, and the workers (``workers``: thin Kafka shells around the pure map and
reduce logic of ``tasks``, which keep state in ``state``); ``queries`` serves interactive
queries of the reducers' state.

May import ``mrkafka.core``, ``mrkafka.io``, ``mrkafka.obs``, ``mrkafka.cluster``,
``mrkafka.kafka`` and the top modules; never ``mrkafka.batch``, ``mrkafka.devtools`` or
``mrkafka.cli``. ``run_stream`` is imported on first use: a command that only manages an
application's topics does not load Ray.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_stream"]


def __getattr__(name: str) -> Any:
    if name == "run_stream":
        from mrkafka.stream.driver import run_stream

        return run_stream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
