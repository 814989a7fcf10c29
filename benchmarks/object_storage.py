"""``python -m benchmarks.object_storage``: a batch run with its input and output on an S3 API
server, against the same run on local files.

Builds (or reuses) the docs corpus (this machine's package documentation, repeated to the size
asked), starts moto's S3 server in a process of its own on 127.0.0.1, uploads the corpus with
boto3, then times ``mrkafka run jobs/wordcount.py`` with ``--input``/``--output`` on local
files and on ``s3://``, in turns, and checks that both wrote the same parts. Each figure is a
whole command; the server's CPU is counted apart (it shares the machine's cores with the run).

    python -m benchmarks.object_storage --size 1GiB --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from benchmarks.corpus import generate_docs_corpus
from mrkafka.io.splits import parse_size

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
BUCKET = "bench"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (the command and its children) of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB", help="corpus size (docs text)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runner", default="local")
    parser.add_argument("--input", type=Path, help="a corpus of your own, instead of the docs text")
    args = parser.parse_args()
    import boto3

    corpus = args.input or DATA / f"docs-{args.size}.txt"
    if args.input is None and (not corpus.exists() or corpus.stat().st_size < parse_size(args.size)):
        DATA.mkdir(parents=True, exist_ok=True)
        generate_docs_corpus(corpus, parse_size(args.size))
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    work = Path(tempfile.mkdtemp(prefix="mrkafka-bench-s3-"))
    try:
        credentials = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
        env = {**os.environ, **credentials, "AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true"}
        keys = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        client.upload_file(str(corpus), BUCKET, f"in/{corpus.name}")
        run = [sys.executable, "-m", "mrkafka.cli", "run", str(ROOT / "jobs" / "wordcount.py"), "--overwrite"]
        run += ["--runner", args.runner]
        commands = {
            "local files": [*run, "--input", str(corpus), "--output", str(work / "out")],
            "s3 (moto)": [*run, "--input", f"s3://{BUCKET}/in/", "--output", f"s3://{BUCKET}/out"],
        }
        server_cpu = psutil.Process(server.pid)
        figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, command in commands.items():
                served = sum(server_cpu.cpu_times()[:2])
                wall, cpu = _timed(command, env)
                figures[name].append((wall, cpu, sum(server_cpu.cpu_times()[:2]) - served))
        local = {p.name: p.read_bytes() for p in (work / "out").glob("part-*")}
        remote = {
            item["Key"][len("out/") :]: client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            for item in client.list_objects_v2(Bucket=BUCKET, Prefix="out/part-")["Contents"]
        }
        assert local == remote, "the parts differ"
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{corpus.name} ({corpus.stat().st_size / 1e6:.0f} MB), runner {args.runner}, {args.repeat} runs each")
    print("| input and output | wall s (median) | run CPU s | server CPU s |")
    print("|---|---:|---:|---:|")
    medians = {name: [statistics.median(column) for column in zip(*runs)] for name, runs in figures.items()}
    for name, (wall, cpu, served) in medians.items():
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {served:.1f} |")
    print(f"s3 / local: {medians['s3 (moto)'][0] / medians['local files'][0]:.2f}x")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
