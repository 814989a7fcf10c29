"""A stream reducer's state: stores of key bytes -> committed state, with the changelog
checkpoint they are current to (``stores``: in memory, or in RocksDB). Knows nothing of Kafka.
"""
