"""Fixtures every tier shares."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import messy_corpus


@pytest.fixture
def messy_file(tmp_path: Path) -> Path:
    path = tmp_path / "messy.txt"
    path.write_bytes(messy_corpus())
    return path


@pytest.fixture(scope="session", autouse=True)
def monitor_dir(tmp_path_factory) -> Path:
    """Where runs and brokers with metrics register with ``mrkafka monitor``: the session's own."""
    directory = tmp_path_factory.mktemp("monitor")
    os.environ["MRKAFKA_MONITOR_DIR"] = str(directory)
    return directory


def pytest_assertrepr_compare(op: str, left: object, right: object) -> list[str] | None:
    """Two word counts that differ, told in a few lines: how many keys each lacks, with their
    counts' sums, how many differ, and the first of each, where pytest's own diff of two
    dictionaries of 100,000 keys fills a log and says none of it."""
    if op != "==" or not isinstance(left, dict) or not isinstance(right, dict):
        return None
    if not all(isinstance(v, int) for v in (*left.values(), *right.values())):
        return None
    missing = sorted(right.keys() - left.keys())
    extra = sorted(left.keys() - right.keys())
    differ = sorted(k for k in left.keys() & right.keys() if left[k] != right[k])
    return [
        f"counts of {len(left):,} keys == counts of {len(right):,} keys",
        f"{len(missing):,} keys only on the right (counts {sum(right[k] for k in missing):,}): {missing[:5]}",
        f"{len(extra):,} keys only on the left (counts {sum(left[k] for k in extra):,}): {extra[:5]}",
        f"{len(differ):,} keys counted differently (left minus right "
        f"{sum(left[k] - right[k] for k in differ):+,}): {[(k, left[k], right[k]) for k in differ[:5]]}",
        f"all counts: left {sum(left.values()):,}, right {sum(right.values()):,}",
    ]
