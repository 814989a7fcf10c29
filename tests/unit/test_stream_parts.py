"""The stream engine's pieces that need no broker: serdes, state stores, Arrow blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrkafka.aggregate import partial_from_ipc, partial_from_pairs, partial_to_ipc, partial_to_pairs
from mrkafka.kafka.serdes import Serde, deserialize_long, format_value, serialize_key, serialize_long
from mrkafka.stream.store import MemoryStore, RocksDBStore


def test_long_is_kafkas_long_serializer() -> None:
    assert serialize_long(1) == b"\x00\x00\x00\x00\x00\x00\x00\x01"
    assert serialize_long(-2) == b"\xff\xff\xff\xff\xff\xff\xff\xfe"
    assert deserialize_long(serialize_long(2**63 - 1)) == 2**63 - 1
    assert format_value(serialize_long(-5), "long") == b"-5"


def test_serdes_round_trip_and_tombstones() -> None:
    long, js = Serde("long"), Serde("json")
    values = [0, 7, -(2**63)]
    assert long.decode_many([long.encode(v) for v in values]) == values
    assert js.decode(js.encode({"a": [1, "é"]})) == {"a": [1, "é"]}
    assert long.encode(None) is None and long.decode_many([None, long.encode(3)]) == [None, 3]
    assert serialize_key("é") == "é".encode() and serialize_key(b"\xff") == b"\xff" and len(serialize_key(5)) == 8
    with pytest.raises(ValueError):
        Serde("avro")


@pytest.mark.parametrize("make", [lambda d: MemoryStore(), lambda d: RocksDBStore(d)])
def test_store_update_merges_in_order(tmp_path: Path, make) -> None:
    store = make(tmp_path / "s")
    store.update([b"a", b"b", b"a"], [1, 2, 3], lambda x, y: x * 10 + y)
    assert dict(store.items()) == {b"a": 13, b"b": 2}
    store.delete(b"b")
    assert store.get(b"b") is None
    store.close()


def test_rocksdb_store_survives_a_restart_only_with_a_checkpoint(tmp_path: Path) -> None:
    store = RocksDBStore(tmp_path / "s")
    assert store.checkpoint is None
    store.put(b"k", (1, "x"))
    store.commit(42)
    store.close()
    again = RocksDBStore(tmp_path / "s")
    assert again.checkpoint == 42 and again.get(b"k") == (1, "x")
    again.close()
    (tmp_path / "s" / "checkpoint.json").unlink()
    fresh = RocksDBStore(tmp_path / "s")  # files not known to be current are dropped
    assert fresh.checkpoint is None and fresh.get(b"k") is None
    fresh.close()


def test_arrow_blocks_round_trip_and_stay_small() -> None:
    keys = [f"word{i}" for i in range(50_000)]
    table = partial_from_pairs(keys, list(range(50_000)))
    blocks = partial_to_ipc(table, 100_000)
    assert len(blocks) > 5 and all(len(b) < 150_000 for b in blocks)
    pairs = [pair for block in blocks for pair in partial_to_pairs(partial_from_ipc(block))]
    assert pairs == list(zip(keys, range(50_000)))
    assert partial_to_ipc(table.slice(0, 0), 100_000) == []
