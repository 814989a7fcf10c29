"""The development cluster and its tools: what a user runs beside mrkafka, not inside a run.

    launcher       ``mrkafka kafka up|down|status``: Apache Kafka (KRaft) fetched from Maven
                   Central and started here (pom.xml; the JMX exporter's pom and rules)
    certificates   the cluster's CA, brokers' and users' certificates, SCRAM credentials
    processes      a process started, its pid kept, stopped with TERM then KILL; ports
    console        ``mrkafka produce`` and ``mrkafka consume``
    monitor        ``mrkafka monitor``: a real Prometheus scraping what registered

May import ``mrkafka.kafka``, ``mrkafka.core``, ``mrkafka.io``, ``mrkafka.obs`` and the top
modules; never an engine or the command line.
"""
