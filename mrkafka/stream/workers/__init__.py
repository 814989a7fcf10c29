"""The stream engine's workers: thin Kafka shells around ``StreamMapper`` and ``StreamReducer``,
each hosted by a Ray async actor.

A worker runs *sessions*, in a thread of its own (librdkafka's calls block; its heartbeats
and fetches run in librdkafka's own threads), while the actor's loop answers the driver. A
session starts the worker's Kafka clients, (reducer) restores its store, and processes until
told to stop. While a broker is away, a session waits in place: its idempotent producer
retries every batch and its consumer every fetch, for up to ``task_timeout`` (so a batch
acknowledged before the outage is never sent twice). A failure that ends the session (a
client that cannot start, a request that no retry helped) makes the worker drop what it had
not committed, close its clients, back off and start a new session from the last commit, for
at most ``task_timeout`` without progress; a lost assignment or a fenced producer (task
migrated) does the same without backing off. The job's own errors and fatal Kafka errors
(authorization, a record too large) end the run with one line.

Each worker writes through one producer and commits with an ``Outbox``
(``mrkafka.kafka.outbox``): under exactly once (the default) the producer is transactional,
its id fixed by the worker (``APP-map-I`` for map worker I, ``APP-reduce-K`` for repartition
partition K), and a commit is one Kafka transaction holding the worker's records and its
input offsets (Kafka Streams' exactly-once v2). Starting a worker's producer fences any older
instance of it (a zombie) and aborts its open transaction. Under at least once the producer
is idempotent and the offsets are committed after the records were acknowledged.

``session`` holds what both kinds share (their Kafka clients, a session's supervision),
``metrics`` what they count; ``map_worker.MapWorker`` and ``reduce_worker.ReduceWorker``
write down their commit protocols, numbered, in their docstrings.

May import ``mrkafka.kafka``, ``mrkafka.core``, ``mrkafka.io``, ``mrkafka.obs`` and the rest of
``mrkafka.stream``; Ray hosts the workers, but nothing here imports it.
"""

from __future__ import annotations

from mrkafka.stream.workers.map_worker import MapWorker
from mrkafka.stream.workers.reduce_worker import ReduceWorker

__all__ = ["MapWorker", "ReduceWorker"]
