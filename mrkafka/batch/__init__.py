"""The batch engine: splits -> map tasks -> murmur2 shuffle -> reduce tasks -> part files.

``driver.run_batch`` plans the splits (``plan``), runs them on a runner picked by name
(``local``: one process, maps in threads; ``inline``: one process, one task at a time;
``ray``: actors on a local or remote Ray cluster, ``ray_runner``) and commits the output; the
runners wrap the same Hadoop-style map and reduce tasks (``tasks``) and give byte-identical
output.

May import ``mrkafka.core``, ``mrkafka.io``, ``mrkafka.obs``, ``mrkafka.cluster`` and the top
modules (job, errors, settings); never ``mrkafka.stream``, ``mrkafka.kafka`` or ``mrkafka.cli``.
"""

from __future__ import annotations

from mrkafka.batch.driver import run_batch

__all__ = ["run_batch"]
