"""``mrkafka topic reassign``: reassignment files read and checked, and ``--generate``'s balance."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from mrkafka.devtools.reassign import Move, check_moves, propose, read_moves, read_topics
from mrkafka.errors import BadInputError


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_the_courses_file_reads_as_kafka_writes_it(tmp_path: Path) -> None:
    course = {
        "version": 1,
        "partitions": [
            {"topic": "kafkademo8", "partition": 0, "replicas": [10, 20, 30]},
            {"topic": "kafkademo8", "partition": 1, "replicas": [20, 30, 40], "log_dirs": ["any", "any", "any"]},
        ],
    }
    assert read_moves(write(tmp_path, course)) == [
        Move("kafkademo8", 0, (10, 20, 30)),
        Move("kafkademo8", 1, (20, 30, 40), ("any", "any", "any")),
    ]
    assert read_topics(write(tmp_path, {"topics": [{"topic": "a"}, {"topic": "b"}], "version": 1})) == ["a", "b"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"version": 1, "partitions": [', "plan.json is not JSON: "),
        ({"version": 1}, 'expected {"version": 1, "partitions": [...]}'),
        ({"partitions": [{"partition": 0, "replicas": [1]}]}, 'partitions[0] has no "topic"'),
        ({"partitions": [{"topic": "t", "partition": -1, "replicas": [1]}]}, '"partition" must be a number 0 or more'),
        ({"partitions": [{"topic": "t", "partition": 0, "replicas": []}]}, 't-0: "replicas" must be a non-empty list'),
        ({"partitions": [{"topic": "t", "partition": 0, "replicas": ["1"]}]}, '"replicas" must be a non-empty list'),
        (
            {"partitions": [{"topic": "t", "partition": 0, "replicas": [1, 2, 1]}]},
            "replicas [1, 2, 1] name broker 1 twice",
        ),
        (
            {"partitions": [{"topic": "t", "partition": 0, "replicas": [1, 2], "log_dirs": ["any"]}]},
            '"log_dirs" must be a list of 2 paths',
        ),
        ({"partitions": [{"topic": "t", "partition": 0, "replicas": [1]}] * 2}, "t-0 is in the file twice"),
    ],
)
def test_a_malformed_file_is_one_line_naming_the_entry(tmp_path: Path, document: object, message: str) -> None:
    with pytest.raises(BadInputError) as refused:
        read_moves(write(tmp_path, document))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_moves_are_checked_against_the_cluster() -> None:
    topics, brokers = {"t": 3, "gone": None}, [10, 20, 30]
    check_moves([Move("t", 2, (30, 10))], topics, brokers)
    for move, busy, message in (
        (Move("gone", 0, (10,)), (), "gone-0: topic gone does not exist"),
        (Move("t", 3, (10,)), (), "t-3: topic t has 3 partition(s), 0 to 2"),
        (Move("t", 0, (10, 99)), (), "t-0: broker 99 is not in the cluster (its brokers: 10,20,30)"),
        (Move("t", 1, (10,)), ("t-1",), "t-1 is being reassigned already"),
    ):
        with pytest.raises(BadInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            check_moves([move], topics, brokers, busy)


def test_generate_balances_bytes_and_leaders_and_keeps_each_partitions_factor() -> None:
    rng = random.Random(7)
    current = {("t", p): [1, 2, 3][: 1 + p % 3] for p in range(40)}
    sizes = {tp: rng.randrange(1, 10**9) for tp in current}
    brokers = [10, 20, 30, 40]
    proposed = propose(current, sizes, brokers, {})
    held = Counter()
    for tp, replicas in proposed.items():
        assert len(replicas) == len(current[tp]) == len(set(replicas)) and set(replicas) <= set(brokers)
        for b in replicas:
            held[b] += sizes[tp]
    assert max(held.values()) - min(held.values()) <= max(sizes.values())  # greedy largest-first's bound
    equal = propose({("t", p): [1, 2] for p in range(12)}, {}, brokers, {})
    assert Counter(r[0] for r in equal.values()) == {b: 3 for b in brokers}  # leaders
    assert Counter(itertools.chain(*equal.values())) == {b: 6 for b in brokers}  # replicas


def test_generate_keeps_a_partitions_replicas_on_distinct_racks() -> None:
    racks = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
    proposed = propose({("t", p): [1, 2, 3] for p in range(10)}, {}, list(racks), racks)
    assert all(len({racks[b] for b in replicas}) == 3 for replicas in proposed.values())
    with pytest.raises(BadInputError, match="t-0 has 3 replicas, but --broker-list names 2 broker"):
        propose({("t", 0): [1, 2, 3]}, {}, [1, 2], {})
