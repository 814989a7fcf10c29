"""Kafka for mrkafka: the broker launcher, topic administration, producing and consuming.

Nothing here knows about jobs; the stream engine builds on it.
"""
