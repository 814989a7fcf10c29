"""Files: reading inputs, writing outputs, and looking keys up in them.

    fs        every file access of the engines goes through here (local files today; the one
              place where other file systems plug in)
    splits    line-aligned splits of input files and the record reader (Hadoop's LineRecordReader)
    formats   part files: text, jsonl and parquet, the one writer both engines use
    commit    the output commit protocol (Hadoop's FileOutputCommitter) and the output lock
    index     a part's lookup index: its keys and a trie, exact and fuzzy search
    lookup    ``mrkafka lookup`` on a finished output

May import ``mrkafka.core``, ``mrkafka.obs`` and the top modules; never an engine, Kafka or Ray.
"""
