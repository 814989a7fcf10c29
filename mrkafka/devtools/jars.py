"""The Java side of the development tools: a JDK checked, and jars resolved from Maven Central.

``ensure_jars`` resolves Apache Kafka's jars once into ``~/.cache/mrkafka/kafka-4.3.1/lib``
with the Maven project beside this file (``pom.xml``); ``jmx_exporter_jar`` the same for
Prometheus' JMX exporter (``jmx-exporter-pom.xml``, its rules in ``jmx-exporter.yml``).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from mrkafka.errors import SetupError

__all__ = ["KAFKA_VERSION", "cache_root", "ensure_jars", "java_command", "jmx_exporter_jar", "resolve_maven_project"]

KAFKA_VERSION = "4.3.1"
_POM = Path(__file__).with_name("pom.xml")
#: Prometheus' JMX exporter, a Java agent that serves a node's MBeans at /metrics (``--metrics-port``).
JMX_EXPORTER_VERSION = "1.0.1"
_JMX_EXPORTER_POM = Path(__file__).with_name("jmx-exporter-pom.xml")
JMX_EXPORTER_RULES = Path(__file__).with_name("jmx-exporter.yml")


def cache_root() -> Path:
    return Path(os.environ.get("MRKAFKA_CACHE", "~/.cache/mrkafka")).expanduser()


def _which(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SetupError(f"no {tool} on PATH: {hint}")
    return path


def java_command() -> str:
    """The ``java`` to run Kafka with, checked to be version 17 or later."""
    java = _which("java", "install a JDK 17 or later (e.g. apt-get install openjdk-17-jdk-headless)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < 17:
        raise SetupError(f"Kafka {KAFKA_VERSION} needs Java 17 or later; {java} is {major or 'unknown'}")
    return java


def ensure_jars() -> Path:
    """The directory of Kafka's jars, resolved from Maven Central on first use."""
    return resolve_maven_project(_POM, cache_root() / f"kafka-{KAFKA_VERSION}", "kafka_2.13-*.jar")


def jmx_exporter_jar() -> Path:
    """The JMX exporter's agent jar, resolved from Maven Central on first use."""
    lib = resolve_maven_project(
        _JMX_EXPORTER_POM, cache_root() / f"jmx-exporter-{JMX_EXPORTER_VERSION}", "jmx_prometheus_javaagent-*.jar"
    )
    return next(lib.glob("jmx_prometheus_javaagent-*.jar"))


def resolve_maven_project(pom: Path, home: Path, expect: str) -> Path:
    """Copy the dependencies of the Maven project ``pom`` into ``home/lib`` (once); return that dir.

    ``expect`` is a glob of a jar that must be there afterwards.
    """
    lib = home / "lib"
    done = home / ".complete"
    if done.exists():
        return lib
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one fetch at a time, across processes
        if done.exists():
            return lib
        mvn = _which("mvn", "install Maven (e.g. apt-get install maven) so that Kafka's jars can be fetched")
        shutil.copy(pom, home / "pom.xml")
        print(f"mrkafka: fetching {home.name} from Maven Central ...", file=sys.stderr)
        result = subprocess.run(
            [mvn, "-q", "-B", "-f", str(home / "pom.xml"), "dependency:copy-dependencies", f"-DoutputDirectory={lib}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not any(lib.glob(expect)):
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
            raise SetupError(f"Maven could not fetch {home.name}:\n{tail}")
        done.touch()
    return lib
