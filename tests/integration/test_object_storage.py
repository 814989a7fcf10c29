"""Inputs and outputs on object storage: a real S3 API server (moto's server mode, on
127.0.0.1, started and stopped by these tests), read and written through ``pyarrow.fs``, and
checked with another S3 client (boto3) against local runs and a ``Counter``."""

from __future__ import annotations

import gzip
import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import WORDCOUNT, oracle_wordcount, read_parts, tricky_corpus
from tests.s3 import BUCKET, S3, s3_server

#: Package documentation, nested, with ``.gz`` files.
DOCS = sorted(Path("/usr/share/doc").iterdir())[:60]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    with s3_server() as store:
        yield store


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, s3: S3) -> Path:
    """A local input tree, uploaded as ``s3://BUCKET/in/``: real documentation (``.gz`` files
    among it), a file big enough to be cut into ranged splits, and files whose names say skip."""
    root = tmp_path_factory.mktemp("tree")
    for doc in DOCS:
        shutil.copytree(doc, root / doc.name, symlinks=False, ignore_dangling_symlinks=True)
    (root / "big").mkdir()
    (root / "big" / "tricky.txt").write_bytes(tricky_corpus(1 << 20))
    (root / "big" / "_SUCCESS").write_bytes(b"skipped\n")
    (root / ".hidden").write_bytes(b"skipped too\n")
    s3.upload(root, "in")
    return root


def expected(tree: Path) -> bytes:
    """The text of every file below ``tree`` a run reads, decompressed."""
    texts = []
    for path in sorted(tree.rglob("*")):
        if path.is_file() and not any(part.startswith(("_", ".")) for part in path.relative_to(tree).parts):
            data = path.read_bytes()
            texts.append(gzip.decompress(data) if path.suffix == ".gz" else data)
    return b"\n".join(texts)


WORDS = ["--reducers", "3", "--block-size", "256KiB", "--runner", "inline"]


def test_wordcount_on_s3_equals_the_local_run(s3: S3, tree: Path, tmp_path: Path) -> None:
    local = s3.run("run", str(WORDCOUNT), "--input", str(tree), "--output", str(tmp_path / "local"), *WORDS)
    assert local.returncode == 0, local.stderr
    remote = s3.run("run", str(WORDCOUNT), "--input", f"s3://{BUCKET}/in/", "--output", f"s3://{BUCKET}/out", *WORDS)
    assert remote.returncode == 0, remote.stderr
    assert f"-> s3://{BUCKET}/out\n" in remote.stderr
    written = s3.objects("out")
    parts = {name: data for name, data in written.items() if name.startswith("part-")}
    assert parts == {p.name: p.read_bytes() for p in sorted((tmp_path / "local").glob("part-*"))}
    assert json.loads(written["_SUCCESS"]) == {"parts": {name: len(data) for name, data in parts.items()}}
    assert sorted(written) == ["_COUNTERS.json", "_SUCCESS", *sorted(parts)]
    counts = {k: int(v) for k, v in read_parts(tmp_path / "local").items()}
    assert counts == dict(oracle_wordcount(expected(tree)))
    split_reads = json.loads(written["_COUNTERS.json"])["Job Counters"]["Launched map tasks"]
    assert split_reads > (tree / "big" / "tricky.txt").stat().st_size // (256 << 10)  # ranged reads of the big file


def test_globs_and_the_endpoint_in_the_uri_reach_ray_workers(s3: S3, tree: Path, tmp_path: Path) -> None:
    """``?endpoint_override=...`` configures the run's file system, in the driver and in every
    Ray worker it starts, with no ``AWS_ENDPOINT_URL`` in their environment."""
    env = {name: value for name, value in s3.env.items() if name != "AWS_ENDPOINT_URL"}
    options = f"?endpoint_override={s3.endpoint.removeprefix('http://')}&scheme=http"
    glob = f"s3://{BUCKET}/in/*/copyright{options}"
    out = f"s3://{BUCKET}/ray-out{options}"
    done = s3.run(
        "run", str(WORDCOUNT), "--input", glob, "--output", out, "--runner", "ray", "--reducers", "2", env=env
    )
    assert done.returncode == 0, done.stderr
    copyrights = b"\n".join(path.read_bytes() for path in sorted(tree.glob("*/copyright")))
    counts = {k: int(v) for k, v in s3.parts("ray-out").items()}
    assert counts == dict(oracle_wordcount(copyrights))
    looked_up = s3.run("lookup", out, "the", env=env)
    assert looked_up.returncode == 0, looked_up.stderr
    assert looked_up.stdout == f"the\t{oracle_wordcount(copyrights)[b'the']}\n"


@pytest.mark.parametrize("point", ["commit-decide:1", "commit-part:2"])
def test_a_run_killed_in_its_commit_on_s3_leaves_one_whole_output(s3: S3, tree: Path, point: str) -> None:
    out = f"s3://{BUCKET}/killed-{point.replace(':', '-')}"
    old = s3.run("run", str(WORDCOUNT), "--input", f"s3://{BUCKET}/in/big/", "--output", out, "--index", *WORDS)
    assert old.returncode == 0, old.stderr
    new_input = f"s3://{BUCKET}/in/{DOCS[0].name}/"
    new = ["run", str(WORDCOUNT), "--input", new_input, "--output", out, "--index", *WORDS]
    killed = s3.run(*new, "--overwrite", env={**s3.env, "MRKAFKA_FAULT": point})
    assert killed.returncode == -9, killed.stderr
    left = s3.objects(out.removeprefix(f"s3://{BUCKET}/"))
    decided = "_COMMITTING" in left
    assert decided == (point != "commit-decide:1")
    assert ("_SUCCESS" in left) == (not decided)  # a decided commit's first step removes the old one

    refused = s3.run(*new)  # finishes the commit if it was decided, then refuses: the output exists
    assert refused.returncode == 4 and "exists" in refused.stderr, refused.stderr
    whole = s3.objects(out.removeprefix(f"s3://{BUCKET}/"))
    assert not {"_COMMITTING", "_temporary"} & {name.split("/")[0] for name in whole}
    source = tree / DOCS[0].name if decided else tree / "big"
    counts = {k: int(v) for k, v in s3.parts(out.removeprefix(f"s3://{BUCKET}/")).items()}
    assert counts == dict(oracle_wordcount(expected(source)))
    parts = {name: len(data) for name, data in whole.items() if name.startswith("part-")}
    assert json.loads(whole["_SUCCESS"]) == {"parts": parts}
    assert len([name for name in whole if name.startswith("_index/")]) == 2 * len(parts)


def test_what_s3_refuses_is_one_line(s3: S3, tree: Path, tmp_path: Path) -> None:
    nowhere = {**s3.env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # the discard port: nothing listens
    for env, args in [
        (nowhere, ["--input", f"s3://{BUCKET}/in/", "--output", str(tmp_path / "a")]),
        (s3.env, ["--input", "s3://no-such-bucket/in/", "--output", str(tmp_path / "b")]),
        (s3.env, ["--input", f"s3://{BUCKET}/in/big/", "--output", "s3://no-such-bucket/out"]),
    ]:
        done = s3.run("run", str(WORDCOUNT), *args, "--runner", "inline", env=env)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "s3://" in done.stderr, done.stderr
    unfinished = s3.run("lookup", f"s3://{BUCKET}/in", "the")
    assert unfinished.returncode == 2 and "not a finished output" in unfinished.stderr, unfinished.stderr


def test_credentials_s3_refuses_are_one_line(s3: S3, tree: Path, tmp_path: Path) -> None:
    """With the server checking signatures: a key it does not know, or none, is one line and
    exit 2; the key of a user allowed to use S3 runs."""
    iam = pytest.importorskip("boto3").client(
        "iam", endpoint_url=s3.endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    iam.create_user(UserName="runner")
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="runner", PolicyName="s3", PolicyDocument=json.dumps(allow))
    key = iam.create_access_key(UserName="runner")["AccessKey"]
    args = ["run", str(WORDCOUNT), "--input", f"s3://{BUCKET}/in/big/", "--runner", "inline"]
    unset = {name: value for name, value in s3.env.items() if not name.startswith("AWS_") or name == "AWS_ENDPOINT_URL"}
    runner = {**s3.env, "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    _check_signatures(s3, True)
    try:
        for env in [{**runner, "AWS_SECRET_ACCESS_KEY": "wrong"}, {**unset, "HOME": str(tmp_path)}]:
            done = s3.run(*args, "--output", str(tmp_path / "refused"), env=env)
            assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
            assert f"cannot reach s3://{BUCKET}/in/big" in done.stderr, done.stderr
        done = s3.run(*args, "--output", f"s3://{BUCKET}/signed", env=runner)
        assert done.returncode == 0, done.stderr
    finally:
        _check_signatures(s3, False)
    counts = {k: int(v) for k, v in s3.parts("signed").items()}
    assert counts == dict(oracle_wordcount(expected(tree / "big")))


def _check_signatures(s3: S3, check: bool) -> None:
    """moto's switch between accepting every request and checking each one's signature."""
    request = urllib.request.Request(
        f"{s3.endpoint}/moto-api/reset-auth", data=b"0" if check else b"inf", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
