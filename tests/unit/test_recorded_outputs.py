"""Every job's output on fixed inputs, compared byte for byte with outputs recorded earlier.

The recorded outputs (``tests/data/recorded/CASE/``) were written by the code as it was
before the engines were restructured; a restructuring must not change a byte of them. Each
case also runs with ``--no-vectorize``: the per-record ``map`` and ``reduce`` must give what
the vectorized form (``map_arrow``, ``aggregate``) gives.

    python -m tests.unit.test_recorded_outputs    # records them again (after a deliberate change)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from mrkafka.batch import run_batch
from mrkafka.job import JobSpec, load_job
from mrkafka.settings import BatchSettings
from tests.helpers import ROOT, messy_corpus

RECORDED = ROOT / "tests" / "data" / "recorded"
JOBS = ROOT / "jobs"
DATA = JOBS / "data"
MESSY = "messy"  # messy_corpus(lines=400), written at run time

#: name -> (job file, input, parameters, reducers, format)
CASES: dict[str, tuple[str, str, dict[str, str], int, str]] = {
    "wordcount-sample": ("wordcount.py", "sample.txt", {}, 2, "text"),
    "wordcount-messy": ("wordcount.py", MESSY, {}, 3, "text"),
    "wordcount-messy-jsonl": ("wordcount.py", MESSY, {}, 2, "jsonl"),
    "wordcount-messy-demo": ("wordcount.py", MESSY, {"lower": "true", "pattern": r"\W+"}, 2, "text"),
    "wordcount-messy-map-only": ("wordcount.py", MESSY, {}, 0, "text"),
    "odd_sum": ("odd_sum.py", "odd_numbers.txt", {}, 2, "text"),
    "sales_by_city": ("sales_by_city.py", "sales.jsonl", {}, 2, "text"),
    "sales_by_city-jsonl": ("sales_by_city.py", "sales.jsonl", {}, 1, "jsonl"),
    "cdc_table": ("cdc_table.py", "cdc.txt", {}, 2, "text"),
    "prefix_index-sample": ("prefix_index.py", "sample.txt", {}, 2, "text"),
    "prefix_index-messy": ("prefix_index.py", MESSY, {"top": "3"}, 2, "jsonl"),
}


def _run(case: str, output: Path, workdir: Path, vectorize: bool = True) -> None:
    job_file, input_name, params, reducers, fmt = CASES[case]
    source = DATA / input_name
    if input_name == MESSY:
        source = workdir / "messy.txt"
        if not source.exists():
            source.write_bytes(messy_corpus(lines=400))
    spec = JobSpec(load_job(JOBS / job_file), params, vectorize=vectorize)
    run_batch(
        spec,
        BatchSettings(inputs=[str(source)], output=output, reducers=reducers, fmt=fmt, runner="inline"),
        progress=False,
    )


def _files(output: Path) -> dict[str, bytes]:
    """The output's part files and ``_SUCCESS``; ``_COUNTERS.json`` differs by design between forms."""
    return {p.name: p.read_bytes() for p in sorted(output.iterdir()) if p.name.startswith(("part-", "_SUCCESS"))}


@pytest.mark.parametrize("vectorize", [True, False], ids=["vectorized", "per-record"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_output_equals_the_recorded_one(case: str, vectorize: bool, tmp_path: Path) -> None:
    _run(case, tmp_path / "out", tmp_path, vectorize)
    recorded = _files(RECORDED / case)
    assert recorded, f"nothing recorded for {case}"
    assert _files(tmp_path / "out") == recorded


def _record(workdir: Path) -> None:
    for case in sorted(CASES):
        target = RECORDED / case
        shutil.rmtree(target, ignore_errors=True)
        _run(case, workdir / case, workdir)
        target.mkdir(parents=True)
        for name, data in _files(workdir / case).items():
            (target / name).write_bytes(data)
        print(f"recorded {case}: {len(list(target.iterdir()))} files", file=sys.stderr)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _record(Path(tmp))
