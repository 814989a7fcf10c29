"""Monitoring end to end: a broker with the JMX exporter, a stream run with --metrics-port, and a
real Prometheus (``mrkafka monitor``) that scrapes both; every expression of the Grafana
dashboard evaluated through Prometheus' query API."""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from mrkafka.devtools.console import produce_lines
from mrkafka.devtools.launcher import Cluster
from mrkafka.devtools.monitor import Monitor
from mrkafka.kafka import admin
from tests.helpers import ROOT, free_ports, listening, oracle_wordcount, read_parts, real_text
from tests.stream_process import StreamRun

pytestmark = pytest.mark.integration

DASHBOARD = ROOT / "monitoring" / "grafana" / "mrkafka.json"


def _query(url: str, expr: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}", timeout=10) as r:
        answer = json.load(r)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def _expressions() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def _grouping(expr: str) -> set[str]:
    """The labels the expression's outermost ``by (...)`` keeps (``le`` is summed away by the quantile)."""
    match = re.search(r"by \(([^)]*)\)", expr)
    return {label.strip() for label in match.group(1).split(",")} - {"le"} if match else set()


def test_prometheus_sees_a_broker_and_a_stream_run_for_every_panel(tmp_path: Path, monitor_dir: Path) -> None:
    # The CI installs Debian's prometheus: a machine without it fails here, it does not skip.
    assert shutil.which("prometheus"), "no prometheus on PATH (Debian: apt-get install prometheus)"
    cluster = Cluster(tmp_path / "kafka", port=free_ports(1), metrics_port=free_ports(1))
    monitor = Monitor(monitor_dir)  # where the broker and the run register
    try:
        bootstrap = cluster.start()
        for node_id, pid in cluster.pids().items():  # the exporter listens where the node's listeners do
            assert listening(pid, cluster.nodes[node_id].metrics_port) == ["127.0.0.1"]
        admin.create_topic(bootstrap, "in", partitions=2)
        data = real_text(6 << 20)
        (tmp_path / "in.txt").write_bytes(data)
        produce_lines(bootstrap, "in", str(tmp_path / "in.txt"), progress=False)
        url = monitor.up(port=free_ports(1), scrape_interval="1s")
        app = "monitored"
        out = tmp_path / "out"
        with StreamRun(
            bootstrap,
            app,
            tmp_path / "state",
            tmp_path / "run.log",
            "--until-end",
            "--output",
            str(out),
            "--metrics-port",
            "0",
            "--commit-interval-ms",
            "1000",
        ) as run:
            # Every panel's expression gives a series, with the labels it groups by, while the run lasts.
            missing = dict(_expressions())
            deadline = time.monotonic() + 120
            while missing:
                assert run.process.poll() is None, f"the run ended before every panel had data: {missing}\n{run.tail()}"
                assert time.monotonic() < deadline, f"no series for: {missing}"
                for title, expr in list(missing.items()):
                    series = _query(url, expr.replace("$application", app))
                    if series and all(_grouping(expr) <= set(s["metric"]) for s in series):
                        del missing[title]
                time.sleep(0.5)
            assert run.process.wait(timeout=240) == 0, run.tail()
        assert {k: int(v) for k, v in read_parts(out).items()} == oracle_wordcount(data)
        # The lag was seen above 0, and at 0 once the run completed (its last scrape).
        lag = f'mrkafka_consumer_lag_records{{application="{app}"}}'
        highest = _query(url, f"max_over_time({lag}[10m])")
        last = _query(url, f"last_over_time({lag}[10m])")
        assert {s["metric"]["partition"] for s in highest} == {"0", "1"}
        assert any(float(s["value"][1]) > 0 for s in highest), highest
        assert all(float(s["value"][1]) == 0 for s in last) and len(last) == 2, last
        assert _query(url, f'last_over_time(mrkafka_up{{application="{app}"}}[10m])')[0]["value"][1] == "0"
        # The broker's own figures: the records appended to the input topic, one per line.
        messages = _query(url, 'max_over_time(kafka_server_messages_in_total{topic="in"}[10m])')
        assert messages and float(messages[0]["value"][1]) == data.count(b"\n"), messages
    finally:
        monitor.down()
        cluster.stop()
    assert monitor.pid() is None and not cluster.pids()
    assert not list((monitor_dir / "targets").glob("*.json"))  # the run and the broker unregistered
