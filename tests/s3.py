"""A real S3 API server for tests (moto's server mode, on 127.0.0.1, in a thread of the test
process), with a bucket, a boto3 client of it, and the environment a run needs to reach it."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BUCKET = "mrkafka-test"


class S3:
    """The server's endpoint, a boto3 client of it (another S3 client than pyarrow's), and the
    environment of a run that reaches it."""

    def __init__(self, endpoint: str) -> None:
        boto3 = pytest.importorskip("boto3")
        self.endpoint = endpoint
        credentials = {"AWS_ACCESS_KEY_ID": "mrkafka", "AWS_SECRET_ACCESS_KEY": "mrkafka-secret"}
        self.env = {**os.environ, **credentials, "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": endpoint}
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        )

    def upload(self, tree: Path, prefix: str) -> None:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                self.client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(tree)}")

    def objects(self, prefix: str) -> dict[str, bytes]:
        """The objects below ``prefix``, by their name there (directory markers left out)."""
        listing = self.client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/").get("Contents", [])
        return {
            item["Key"][len(prefix) + 1 :]: self.client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            for item in listing
            if not item["Key"].endswith("/")
        }

    def parts(self, prefix: str) -> dict[bytes, bytes]:
        """``key -> value`` over the part files below ``prefix``; fails on a repeated key."""
        result: dict[bytes, bytes] = {}
        for name, data in sorted(self.objects(prefix).items()):
            if name.startswith("part-r-"):
                for line in data.splitlines():
                    key, _, value = line.rpartition(b"\t")
                    assert key not in result, f"{key!r} in two parts"
                    result[key] = value
        return result

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``mrkafka ARGS`` in a process of its own, with this server's environment (or ``env``)."""
        command = [sys.executable, "-m", "mrkafka.cli", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env or self.env)


@contextlib.contextmanager
def s3_server() -> Iterator[S3]:
    """The server, started on a free port of 127.0.0.1 with the bucket ``BUCKET``; stopped on exit."""
    moto_server = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        store = S3(f"http://{host}:{port}")
        store.client.create_bucket(Bucket=BUCKET)
        yield store
    finally:
        server.stop()
