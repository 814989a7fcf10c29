"""mrkafka: one MapReduce job file, run as a batch job on Ray or as a streaming aggregation on Kafka."""

from __future__ import annotations

from mrkafka.errors import MrkafkaError
from mrkafka.job import Job, StreamOptions

__all__ = ["Job", "MrkafkaError", "StreamOptions", "__version__"]
__version__ = "0.1.0"
