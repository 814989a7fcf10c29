"""The development cluster and its tools: what a user runs beside mrkafka, not inside a run.

    launcher       ``mrkafka kafka up|down|status``: Apache Kafka (KRaft) started here
    broker_config  its nodes: ports, listeners, ``server.properties``, log configuration
    jars           a JDK checked; Kafka's and the JMX exporter's jars fetched from Maven Central
                   (pom.xml, jmx-exporter-pom.xml; the exporter's rules in jmx-exporter.yml)
    certificates   the cluster's CA, brokers' and users' certificates, SCRAM credentials
    processes      a process started, its pid kept, stopped with TERM then KILL; ports
    console        ``mrkafka produce`` and ``mrkafka consume``
    tools          ``mrkafka kafka tool``: Kafka's own command-line tools, from the fetched jars
    reassign       ``mrkafka topic reassign``: files checked, a balanced ``--generate``, Kafka's tool
    membership     ``mrkafka kafka add-broker|remove-broker``: a broker joins or leaves a running cluster
    monitor        ``mrkafka monitor``: a real Prometheus scraping what registered

May import ``mrkafka.kafka``, ``mrkafka.core``, ``mrkafka.io``, ``mrkafka.obs`` and the top
modules; never an engine or the command line.
"""
