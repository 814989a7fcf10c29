"""Apache Hadoop's MapReduce WordCount in local mode (``LocalJobRunner``, one JVM).

``benchmarks/hadoop/WordCount.java`` is Hadoop's classic word count, compiled once against
the Hadoop 3.4 client jars that ``benchmarks/hadoop/pom.xml`` fetches from Maven Central.
Its words are ``StringTokenizer``'s over each line decoded as UTF-8 with replacement: space,
tab, newline, carriage return and form feed separate them, a vertical tab does not. Map
tasks run as many at a time as there are CPUs (``mapreduce.local.map.tasks.maximum``).

``python -m benchmarks.peers.hadoop_wc INPUT OUTPUT [REDUCERS]`` writes Hadoop's output
directory (``part-r-NNNNN``, ``_SUCCESS``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from mrkafka.devtools.jars import cache_root, java_command, resolve_maven_project

HERE = Path(__file__).resolve().parent.parent / "hadoop"
VERSION = "3.4.1"


def command(source: str, output: str, reducers: int = 1) -> list[str]:
    """The command that runs WordCount over ``source`` into the directory ``output``."""
    home = cache_root() / f"hadoop-{VERSION}"
    lib = resolve_maven_project(HERE / "pom.xml", home, "hadoop-client-api-*.jar")
    java_source = HERE / "WordCount.java"
    classes = home / "classes" / hashlib.sha256(java_source.read_bytes()).hexdigest()[:16]
    if not (classes / "WordCount.class").exists():
        javac = Path(java_command()).with_name("javac")
        subprocess.run([str(javac), "-nowarn", "-cp", f"{lib}/*", "-d", str(classes), str(java_source)], check=True)
    cpus = os.cpu_count() or 1
    return [
        java_command(),
        "-Xmx2g",
        "-cp",
        f"{classes}:{lib}/*",
        "WordCount",
        source,
        output,
        str(reducers),
        str(cpus),
    ]


def main(source: str, output: str, reducers: int = 1) -> None:
    sys.exit(subprocess.run(command(source, output, reducers)).returncode)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:4]))
