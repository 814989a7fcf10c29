"""Fixtures every tier shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import messy_corpus


@pytest.fixture
def messy_file(tmp_path: Path) -> Path:
    path = tmp_path / "messy.txt"
    path.write_bytes(messy_corpus())
    return path
