"""``mrkafka monitor``: a real Prometheus server that scrapes brokers and runs.

``Monitor.up`` writes a Prometheus config into the monitor's directory (``MRKAFKA_MONITOR_DIR``,
default ``~/.cache/mrkafka/monitor``) and starts ``prometheus`` (Debian's package, or any on
PATH) in the background on 127.0.0.1, its pid recorded there so that ``down`` stops exactly
that process. It scrapes what registered in ``DIR/targets`` (Prometheus' file service
discovery): each ``kafka up --metrics-port`` cluster and each run with ``--metrics-port``,
which writes its target file when it starts serving and removes it when it ends
(``mrkafka.obs.metrics.register``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mrkafka.devtools import processes
from mrkafka.errors import SetupError
from mrkafka.kafka.security import private_dir
from mrkafka.obs.metrics import PID_LABEL, monitor_dir

__all__ = ["DEFAULT_PORT", "Monitor"]

DEFAULT_PORT = 9090
_STATE = "monitor.json"

_CONFIG = """\
# Written by mrkafka monitor up: scrape what registered in targets/ (file service discovery).
global:
  scrape_interval: {interval}
  evaluation_interval: {interval}
scrape_configs:
  - job_name: mrkafka
    file_sd_configs:
      - files: ["{targets}/*.json"]
        refresh_interval: {interval}
"""


@dataclass
class Monitor:
    directory: Path

    @classmethod
    def default(cls) -> Monitor:
        return cls(monitor_dir())

    @property
    def _state_file(self) -> Path:
        return self.directory / _STATE

    def _state(self) -> dict:
        return json.loads(self._state_file.read_text()) if self._state_file.exists() else {}

    @property
    def config(self) -> Path:
        return self.directory / "prometheus.yml"

    def pid(self) -> int | None:
        """The pid of the Prometheus that ``up`` started here, if it still runs."""
        pid = self._state().get("pid")
        return pid if processes.running(pid, str(self.config)) else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._state().get('port', DEFAULT_PORT)}"

    def up(self, port: int = DEFAULT_PORT, scrape_interval: str = "5s", timeout: float = 60.0) -> str:
        """Start Prometheus (unless it runs here already); return its URL once it is ready."""
        if self.pid() is not None:
            return self.url
        prometheus = shutil.which("prometheus")
        if prometheus is None:
            raise SetupError("no prometheus on PATH: install it (Debian: apt-get install prometheus)")
        if not processes.port_free(port):
            raise SetupError(f"port {port} on 127.0.0.1 is taken; pick another with --port")
        private_dir(self.directory)
        (self.directory / "targets").mkdir(exist_ok=True)
        self.config.write_text(_CONFIG.format(interval=scrape_interval, targets=self.directory / "targets"))
        command = [
            prometheus,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        process = processes.spawn(command, self.directory / "prometheus.log")
        self._state_file.write_text(json.dumps({"pid": process.pid, "port": port}) + "\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SetupError(f"prometheus exited at start; see {self.directory / 'prometheus.log'}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as ready:
                if ready.status == 200:
                    return self.url
            time.sleep(0.2)
        self.down()
        raise SetupError(f"prometheus was not ready within {timeout:.0f} s; see {self.directory / 'prometheus.log'}")

    def down(self, timeout: float = 30.0) -> int | None:
        """Stop the Prometheus started here (SIGTERM, then SIGKILL); its pid, or ``None``."""
        pid = self.pid()
        if pid is None:
            return None
        processes.stop([pid], timeout)
        return pid

    def targets(self) -> list[str]:
        """The scrape targets registered now: ``job: host:port`` each. A target whose process
        died without saying so (SIGKILL) is deleted, not listed: Prometheus stops scraping it."""
        found = []
        for path in sorted((self.directory / "targets").glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                groups = json.loads(path.read_text())
                pids = {int(g["labels"][PID_LABEL]) for g in groups if PID_LABEL in g["labels"]}
                if any(not processes.running(pid) for pid in pids):
                    path.unlink()
                    continue
                for group in groups:
                    found += [f"{group['labels']['job']}: {target}" for target in group["targets"]]
        return found
