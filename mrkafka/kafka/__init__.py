"""The Kafka client as a run uses it: connecting and why a connection was refused, error
classes and backoff, the Outbox that commits a task's writes with its offsets (``client``),
one admin connection for many calls (``admin``), client security settings from a Kafka
properties file (``security``), ACLs and SCRAM users (``acl``).

Knows nothing of jobs, engines, files or the command line: imports nothing of mrkafka but
``mrkafka.errors``.
"""
