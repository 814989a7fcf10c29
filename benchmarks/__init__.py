"""The mrkafka benchmark suite: ``python -m benchmarks``."""
