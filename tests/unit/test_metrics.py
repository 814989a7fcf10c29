"""Metrics: the figures a driver serves, a batch run's metrics file, and the README's table."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from mrkafka.batch import run_batch
from mrkafka.cli import main
from mrkafka.core.counters import Counters
from mrkafka.job import JobSpec, load_job
from mrkafka.obs.metrics import BUCKETS, METRICS, MetricValues, RunMetrics, with_counters
from mrkafka.settings import BatchSettings
from tests.helpers import ROOT, WORDCOUNT, cli, listening, real_text


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Prometheus' own parser as the oracle: sample name and labels -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _exposition(metrics: RunMetrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


def test_counters_of_a_restarted_worker_keep_growing_and_the_restart_is_counted() -> None:
    metrics = RunMetrics("app", {"mode": "stream"})
    first = MetricValues()
    first.inc("mrkafka_commits_total", 5, application="app", task="map-0")
    first.set("mrkafka_state_store_keys", 40, application="app", task="reduce-0", store="state")
    first.observe("mrkafka_commit_duration_seconds", [0.003, 0.2, 1000.0], application="app", role="map")
    metrics.update("map:0", first, "map")
    again = MetricValues()  # the same worker, restarted by Ray: its figures start from zero
    again.inc("mrkafka_commits_total", 2, application="app", task="map-0")
    again.set("mrkafka_state_store_keys", 7, application="app", task="reduce-0", store="state")
    again.observe("mrkafka_commit_duration_seconds", 0.004, application="app", role="map")
    metrics.update("map:0", again, "map")
    samples = _samples(_exposition(metrics))
    app = ("application", "app")
    assert samples[("mrkafka_commits_total", frozenset({app, ("task", "map-0")}))] == 7
    assert samples[("mrkafka_worker_restarts_total", frozenset({app, ("role", "map")}))] == 1
    assert samples[("mrkafka_state_store_keys", frozenset({app, ("task", "reduce-0"), ("store", "state")}))] == 7
    role = frozenset({app, ("role", "map")})
    assert samples[("mrkafka_commit_duration_seconds_count", role)] == 4
    assert abs(samples[("mrkafka_commit_duration_seconds_sum", role)] - 1000.207) < 1e-9
    buckets = {
        float(dict(labels)["le"]): value
        for (name, labels), value in samples.items()
        if name == "mrkafka_commit_duration_seconds_bucket"
    }
    assert buckets[0.0025] == 0 and buckets[0.005] == 2 and buckets[0.25] == 3 and buckets[max(BUCKETS)] == 3
    assert buckets[float("inf")] == 4
    assert samples[("mrkafka_up", frozenset({app}))] == 1
    # A worker first seen after Ray restarted it says so itself.
    metrics.update("reduce:0", MetricValues(restarted=True), "reduce")
    samples = _samples(_exposition(metrics))
    assert samples[("mrkafka_worker_restarts_total", frozenset({app, ("role", "reduce")}))] == 1


def test_with_counters_gives_the_job_counters_and_the_retries() -> None:
    counters = Counters({"Stream retries": {"retriable": 3}, "Map-Reduce Framework": {"Map input records": 9}})
    pulled = with_counters(MetricValues(application="app"), counters)
    assert pulled.values[("mrkafka_retries_total", (("application", "app"), ("error_class", "retriable")))] == 3
    key = (
        "mrkafka_job_counters_total",
        (("application", "app"), ("group", "Map-Reduce Framework"), ("name", "Map input records")),
    )
    assert pulled.values[key] == 9


def test_a_batch_run_writes_its_final_metrics_to_a_file(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_bytes(real_text(1 << 20))
    spec = JobSpec(load_job(WORDCOUNT))
    out, prom = tmp_path / "out", tmp_path / "run.prom"
    run_batch(
        spec,
        BatchSettings(
            inputs=[str(tmp_path / "in.txt")],
            output=out,
            runner="inline",
            reducers=3,
            block_size=256 << 10,
            metrics_file=str(prom),
        ),
        progress=False,
    )
    samples = _samples(prom.read_text())
    app = ("application", "wordcount")
    splits = samples[("mrkafka_splits", frozenset({app}))]
    assert splits >= 4 and samples[("mrkafka_splits_done_total", frozenset({app}))] == splits
    assert samples[("mrkafka_task_duration_seconds_count", frozenset({app, ("role", "map")}))] == splits
    assert samples[("mrkafka_task_duration_seconds_count", frozenset({app, ("role", "reduce")}))] == 3
    assert samples[("mrkafka_up", frozenset({app}))] == 0
    # The run's counters, as _COUNTERS.json holds them.
    for group, names in json.loads((out / "_COUNTERS.json").read_text()).items():
        for name, value in names.items():
            key = ("mrkafka_job_counters_total", frozenset({app, ("group", group), ("name", name)}))
            assert samples[key] == value, (group, name)


def test_a_metrics_port_in_use_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_bytes(b"a b\n")
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = cli(
            "run",
            str(WORDCOUNT),
            "--input",
            str(tmp_path / "in.txt"),
            "--output",
            str(tmp_path / "o"),
            "--runner",
            "inline",
            "--metrics-port",
            str(port),
        )
    assert code == 6 and err.count("\n") == 1 and f"--metrics-port {port}: Address already in use" in err, err
    assert not (tmp_path / "o").exists()


def test_the_readme_lists_every_metric() -> None:
    section = (ROOT / "README.md").read_text().split("## Monitoring", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(mrkafka_\w+)` \| (\w+) \|", section, re.M)
    assert listed == [(name, kind) for name, (kind, _, _) in METRICS.items()]


def test_a_runs_metrics_listen_on_loopback_unless_told_otherwise() -> None:
    import os

    for address, expected in ((None, "127.0.0.1"), ("0.0.0.0", "0.0.0.0")):
        metrics = RunMetrics("app", {"mode": "batch"}, port=0, **({"address": address} if address else {}))
        try:
            assert listening(os.getpid(), metrics.port) == [expected]
        finally:
            metrics.close()


def test_a_metrics_address_without_a_metrics_port_is_refused(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("a\n")
    code, err = cli(
        "run",
        str(WORDCOUNT),
        "--input",
        str(tmp_path / "in.txt"),
        "--output",
        str(tmp_path / "o"),
        "--runner",
        "inline",
        "--metrics-address",
        "0.0.0.0",
    )
    assert code == 2 and "--metrics-address applies only with --metrics-port" in err, err


def test_a_workers_histograms_exist_at_zero_before_their_first_value() -> None:
    # Prometheus' rate() needs a sample before the first value: a latency first seen at a run's
    # last commit would otherwise never show on the dashboard.
    from mrkafka.settings import StreamSettings
    from mrkafka.stream.config import StreamConfig
    from mrkafka.stream.workers import metrics as worker_metrics

    settings = StreamSettings(application_id="app", input_topic="in", reducers=1)
    config = StreamConfig.of(JobSpec(load_job(WORDCOUNT)), settings)
    run = RunMetrics("app", {"mode": "stream"})
    run.update("reduce:0", worker_metrics.new(config, "reduce-0"), "reduce")
    run.update("map:0", worker_metrics.new(config), "map")
    samples = _samples(_exposition(run))
    app = ("application", "app")
    assert samples[("mrkafka_end_to_end_latency_seconds_count", frozenset({app}))] == 0
    assert samples[("mrkafka_commit_duration_seconds_count", frozenset({app, ("role", "reduce")}))] == 0
    assert samples[("mrkafka_commit_duration_seconds_count", frozenset({app, ("role", "map")}))] == 0


def test_a_killed_runs_target_is_no_longer_listed(tmp_path: Path, monitor_dir: Path) -> None:
    """A run SIGKILLed while serving /metrics cannot unregister: ``mrkafka monitor status`` drops
    its target (and the file Prometheus reads) once its process is gone."""
    (tmp_path / "slow.py").write_text(
        "import time\nfrom mrkafka import Job\n\n\nclass Slow(Job):\n    def map(self, offset, line):\n"
        "        time.sleep(0.05)\n        yield line, 1\n\n    def reduce(self, a, b):\n        return a + b\n"
    )
    (tmp_path / "in.txt").write_bytes(b"x\n" * 2000)
    args = ["run", str(tmp_path / "slow.py"), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "o")]
    args += ["--runner", "inline", "--metrics-port", "0"]

    def listed() -> str:
        return CliRunner().invoke(main, ["monitor", "status"]).stdout

    with subprocess.Popen([sys.executable, "-m", "mrkafka.cli", *args], stderr=subprocess.DEVNULL) as run:
        target = monitor_dir / "targets" / f"run-Slow-{run.pid}.json"
        deadline = time.monotonic() + 60
        while not target.exists():
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        address = json.loads(target.read_text())[0]["targets"][0]
        assert f"mrkafka: {address}" in listed()
        run.send_signal(signal.SIGKILL)
    assert f"mrkafka: {address}" not in listed() and not target.exists()
