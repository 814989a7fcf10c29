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
