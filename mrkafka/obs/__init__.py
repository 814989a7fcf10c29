"""Observability: what a run and its workers tell about themselves.

    metrics     a run's Prometheus metrics: workers' metric values pulled by the driver, /metrics,
                registering with the monitor
    histogram   a latency histogram of fixed size
    progress    the progress bar on a terminal
    faults      fault points for tests: a process kills or stops itself at a named point

May import ``mrkafka.core`` and the top modules; never an engine, a file, Kafka or Ray.
"""
