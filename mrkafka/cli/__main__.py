"""``python -m mrkafka.cli``: the ``mrkafka`` command."""

from mrkafka.cli import main

main()
