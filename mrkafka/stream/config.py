"""What every worker of a stream run is given: the job, the run's settings, and what the
driver learned at start (the output topic's partition count, how clients connect).

Built once by the driver from the ``StreamSettings`` the command line made, and shipped to
each worker whole: a setting has one name and one default (``mrkafka.settings``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mrkafka.job import JobSpec
from mrkafka.kafka.security import PLAINTEXT, ClientSecurity
from mrkafka.settings import EXACTLY_ONCE, StreamSettings
from mrkafka.stream import application

__all__ = ["MAX_MESSAGE_BYTES", "MAX_TRANSACTION_TIMEOUT_MS", "StreamConfig"]

#: The largest record mrkafka writes to a topic it creates (a long word's block, a large state).
MAX_MESSAGE_BYTES = 16 << 20
#: The broker's default ``transaction.max.timeout.ms``: no transaction may ask for more.
MAX_TRANSACTION_TIMEOUT_MS = 900_000
#: How long a transaction may stay open after its commit interval (Kafka Streams: 10 s in all).
TRANSACTION_MARGIN_MS = 60_000


@dataclass(frozen=True)
class StreamConfig:
    spec: JobSpec
    #: The run's settings, with ``application_id`` and ``output_topic`` resolved (``StreamSettings.resolved``).
    settings: StreamSettings
    #: The output topic's partition count (it may differ from the reducers').
    output_partitions: int
    #: How every client connects; it travels to the workers as the path of its file.
    security: ClientSecurity = PLAINTEXT

    @classmethod
    def of(
        cls,
        spec: JobSpec,
        settings: StreamSettings,
        output_partitions: int | None = None,
        security: ClientSecurity = PLAINTEXT,
    ) -> StreamConfig:
        """A config for ``settings`` resolved for ``spec``; the output topic has R partitions unless told."""
        settings = settings.resolved(spec.name)
        return cls(spec, settings, output_partitions or settings.reducers, security)

    @property
    def application_id(self) -> str:
        return self.settings.application_id or self.spec.name

    @property
    def bootstrap(self) -> str:
        return self.settings.bootstrap

    @property
    def input_topic(self) -> str:
        return self.settings.input_topic

    @property
    def output_topic(self) -> str:
        return self.settings.output_topic or f"{self.application_id}-output"

    @property
    def reducers(self) -> int:
        return self.settings.reducers

    @property
    def exactly_once(self) -> bool:
        return self.settings.guarantee == EXACTLY_ONCE

    @property
    def transaction_timeout_ms(self) -> int:
        """A commit interval plus ``TRANSACTION_MARGIN_MS`` for its flush and commit: a
        transaction open longer than that is aborted by the coordinator. That bounds how long
        a worker that died with its transaction open (and that no successor fenced) holds the
        read_committed readers of its partitions; a flush that outlasts it, waiting out an
        outage, fails its transaction, and the session starts again from the last commit."""
        return min(MAX_TRANSACTION_TIMEOUT_MS, self.settings.commit_interval_ms + TRANSACTION_MARGIN_MS)

    @property
    def repartition_topic(self) -> str:
        return application.repartition_topic(self.application_id)

    @property
    def changelog_topic(self) -> str:
        return application.changelog_topic(self.application_id, self.spec.job_cls.stream.store_name)

    @property
    def internal_topics(self) -> tuple[str, ...]:
        return self.repartition_topic, self.changelog_topic, application.identity_topic(self.application_id)

    @property
    def reducer_group(self) -> str:
        return application.reducer_group(self.application_id)
