"""Records that mrkafka did not write, put on an application's internal topics by a client
that is not ours (confluent-kafka's own producer): a reducer runs none of them, stops with
one line naming topic, partition and offset, and under ``--on-error skip`` counts and skips
them. What the runs before committed is kept either way: the answer is the oracle's."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from mrkafka.core.partial import partial_from_pairs, partial_to_ipc
from mrkafka.devtools.console import produce_lines
from mrkafka.errors import BadInputError
from mrkafka.job import JobSpec, load_job
from mrkafka.kafka import admin
from mrkafka.settings import StreamSettings
from mrkafka.stream import run_stream
from mrkafka.stream.reducer import KEY_KIND_HEADER
from tests.helpers import WORDCOUNT, exploit_pickle, messy_corpus, oracle_wordcount, read_parts

pytestmark = pytest.mark.integration


def _pickled_partial(payload: bytes) -> bytes:
    """A well-formed Arrow block whose values say they are pickles: what an older mrkafka wrote."""
    schema = pa.schema(
        [pa.field("key", pa.binary()), pa.field("value", pa.binary(), metadata={b"mrkafka.value": b"pickle"})],
        metadata={b"mrkafka.key": b"str"},
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(pa.table({"key": [b"word"], "value": [payload]}, schema=schema))
    return sink.getvalue().to_pybytes()


def _crafted(marker: Path) -> list[bytes]:
    exploit = exploit_pickle(marker)
    block = partial_to_ipc(partial_from_pairs(["word"], [7]), 1 << 20)[0]
    return [exploit, b"\x00garbage\xff", block[: len(block) // 2], _pickled_partial(exploit)]


def _send(bootstrap: str, topic: str, values: list[bytes], key: bytes | None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value, key, partition=0, headers=[(KEY_KIND_HEADER, b"str")])
    assert producer.flush(30) == 0


@pytest.mark.parametrize("internal", ["repartition", "state-changelog"])
def test_a_record_mrkafka_did_not_write_runs_nothing(
    ray_cluster, bootstrap: str, topic_name: str, tmp_path: Path, internal: str
) -> None:
    app = f"{topic_name}-app"
    env = {"bootstrap": bootstrap, "input_topic": topic_name, "application_id": app, "state_dir": str(tmp_path / "s")}
    admin.create_topic(bootstrap, topic_name, partitions=2)
    first, second = messy_corpus(seed=5, lines=400), messy_corpus(seed=6, lines=400)

    def feed(data: bytes, name: str) -> None:
        (tmp_path / name).write_bytes(data)
        produce_lines(bootstrap, topic_name, str(tmp_path / name), progress=False)

    def run(output: str, on_error: str = "fail"):
        settings = StreamSettings(**env, until_end=True, reducers=1, commit_interval_ms=200, output=tmp_path / output)
        return run_stream(JobSpec(load_job(WORDCOUNT), on_error=on_error), settings)

    feed(first, "first.txt")
    run("first")  # the internal topics exist, and hold what this run committed
    topic = f"{app}-{internal}"
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{app}-probe"})
    bad_offset = probe.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)[1]
    probe.close()
    marker = tmp_path / "ran"
    crafted = _crafted(marker)
    _send(bootstrap, topic, crafted, key=b"crafted")
    feed(second, "second.txt")

    with pytest.raises(BadInputError) as refused:
        run("refused")
    message = str(refused.value)
    assert f"topic {topic} partition 0 offset {bad_offset} is not a record mrkafka wrote" in message, message
    assert "\n" not in message and not (tmp_path / "refused").exists()

    report = run("skipped", on_error="skip")
    assert not marker.exists()
    counts = {k: int(v) for k, v in read_parts(tmp_path / "skipped").items()}
    assert counts == dict(oracle_wordcount(first + second))
    assert report.counters.get(("wordcount", "bad_records")) == len(crafted)
