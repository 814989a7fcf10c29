"""``mrkafka monitor``: Prometheus on this machine, scraping brokers and runs."""

from __future__ import annotations

import sys

import click

from mrkafka.cli.base import debug_option


@click.group(short_help="Run Prometheus here, scraping brokers and runs that serve metrics.")
def monitor() -> None:
    """A real Prometheus server that scrapes each `kafka up --metrics-port` cluster and each run
    with --metrics-port while it lasts (they register in ~/.cache/mrkafka/monitor/targets, or
    $MRKAFKA_MONITOR_DIR/targets)."""


@monitor.command("up")
@click.option("--port", type=click.IntRange(1, 65535), default=9090, show_default=True, help="Prometheus' port.")
@click.option("--scrape-interval", default="5s", show_default=True, help="How often targets are scraped.")
@debug_option
def monitor_up(port: int, scrape_interval: str) -> None:
    """Start Prometheus (needs `prometheus` on PATH) and print its URL."""
    from mrkafka.devtools.monitor import Monitor

    click.echo(Monitor.default().up(port, scrape_interval))


@monitor.command("down")
@debug_option
def monitor_down() -> None:
    """Stop the Prometheus that `monitor up` started (by its recorded pid)."""
    from mrkafka.devtools.monitor import Monitor

    stopped = Monitor.default().down()
    click.echo("stopped prometheus" if stopped else "no prometheus was running", err=True)


@monitor.command("status")
@debug_option
def monitor_status() -> None:
    """Say where Prometheus runs and what it scrapes (exit 1: it does not run)."""
    from mrkafka.devtools.monitor import Monitor

    found = Monitor.default()
    pid = found.pid()
    click.echo(f"prometheus: {found.url} running (pid {pid})" if pid else "prometheus: stopped")
    for target in found.targets():
        click.echo(f"  {target}")
    if pid is None:
        sys.exit(1)
