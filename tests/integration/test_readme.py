"""The README's commands, run as a new user runs them: in a fresh copy of the project, in the
README's order, as written.

Every ``sh`` block runs (blocks marked ``sh needs-kafka``, ``sh needs-root``, ``sh needs-s3`` or
``sh needs-cluster`` are left to the tests of what they show): the first, the fresh-machine
install, verbatim too, in a virtual environment that sees this one's packages, so that it
installs the copy itself and nothing else.
The outputs are checked against an oracle of their own, and the copy must hold no file the
commands left outside ``out/`` (``.gitignore``'s).
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import ROOT, read_parts

pytestmark = pytest.mark.integration


def shell_blocks(readme: str) -> list[str]:
    """The README's ```sh blocks, in order."""
    return re.findall(r"^```sh\n(.*?)^```$", readme, re.S | re.M)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A fresh copy of the project's files, as git sees them, committed, with a virtual environment
    whose packages are this one's (``.venv`` is where the README's first command makes one)."""
    copy = tmp_path / "mrkafka"
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            (copy / name).write_bytes(source.read_bytes())
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    subprocess.run(["git", "add", "-A"], cwd=copy, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=copy, check=True)
    subprocess.run([sys.executable, "-m", "venv", ".venv"], cwd=copy, check=True)
    site = next((copy / ".venv" / "lib").glob("python3*/site-packages"))
    (site / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return copy


def test_the_readmes_commands_run_in_a_fresh_clone_in_order(clone: Path) -> None:
    blocks = shell_blocks((clone / "README.md").read_text())
    assert blocks[0].startswith("python3 -m venv .venv") and len(blocks) >= 6, blocks[:2]
    script = "set -eo pipefail\n" + "\n".join(blocks)
    done = subprocess.run(
        ["bash", "-c", script], cwd=clone, capture_output=True, encoding="utf-8", errors="replace", timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]

    sample = (clone / "jobs" / "data" / "sample.txt").read_bytes()
    words = {w: str(n).encode() for w, n in collections.Counter(sample.split()).items()}
    for output in ("wordcount", "batch", "wc"):
        assert read_parts(clone / "out" / output) == words, output
    assert read_parts(clone / "out" / "odd") == {b"odd_sum": b"39"}
    assert "wor\twords,\t2" in done.stdout
    left = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout
    assert left == "", f"the README's commands left files outside out/: {left}"
