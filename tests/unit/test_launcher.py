from __future__ import annotations

import base64

from mrkafka.devtools.launcher import Cluster, _new_cluster_id


def test_cluster_ids_are_kafkas_form_and_never_look_like_an_option() -> None:
    for _ in range(2000):
        cluster_id = _new_cluster_id()
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_nodes_and_ports(tmp_path) -> None:
    cluster = Cluster(tmp_path, brokers=3, port=29092)
    assert cluster.bootstrap_servers == "127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094"
    assert [n.controller_port for n in cluster.nodes] == [29192, 29193, 29194]
    cluster._write_configs()
    config = cluster.nodes[1].config.read_text()
    assert "node.id=1" in config and "controller.quorum.voters=0@127.0.0.1:29192,1@127.0.0.1:29193" in config
    assert "listeners=PLAINTEXT://127.0.0.1:29093,CONTROLLER://127.0.0.1:29193" in config
    assert cluster.pids() == {}


def test_any_ids_five_nodes_and_three_controllers(tmp_path) -> None:
    import pytest

    from mrkafka.errors import SetupError

    cluster = Cluster(tmp_path, brokers=5, port=29092, broker_ids=(10, 20, 30, 40, 50))
    cluster._write_configs()
    voters = "controller.quorum.voters=10@127.0.0.1:29192,20@127.0.0.1:29193,30@127.0.0.1:29194\n"
    third, fourth = cluster.node(30).config.read_text(), cluster.node(40).config.read_text()
    assert "node.id=30\n" in third and "process.roles=broker,controller\n" in third and voters in third
    assert "listeners=PLAINTEXT://127.0.0.1:29094,CONTROLLER://127.0.0.1:29194\n" in third
    assert "node.id=40\n" in fourth and "process.roles=broker\n" in fourth and voters in fourth
    assert "listeners=PLAINTEXT://127.0.0.1:29095\n" in fourth and "default.replication.factor=3\n" in fourth
    assert (tmp_path / "node-50" / "server.properties").exists()
    assert Cluster.load(tmp_path) is None  # nothing recorded before a start
    for brokers, ids, message in (
        (6, (), "--brokers must be 1 to 5, got 6"),
        (2, (1, 2, 3), "--broker-ids names 3 broker\\(s\\), but --brokers is 2"),
        (2, (1, 1), "--broker-ids must be distinct and not negative, got 1,1"),
    ):
        with pytest.raises(SetupError, match=message):
            Cluster(tmp_path, brokers=brokers, broker_ids=ids)


def test_missing_java_or_maven_says_what_to_do(tmp_path, monkeypatch) -> None:
    import pytest

    from mrkafka.devtools.jars import ensure_jars, java_command
    from mrkafka.errors import SetupError

    monkeypatch.setenv("PATH", str(tmp_path))  # no java, no mvn
    monkeypatch.setenv("MRKAFKA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SetupError, match="no java on PATH: install a JDK 17"):
        java_command()
    with pytest.raises(SetupError, match="no mvn on PATH: install Maven"):
        ensure_jars()


def test_an_old_java_is_refused(tmp_path, monkeypatch) -> None:
    import pytest

    from mrkafka.devtools.jars import java_command
    from mrkafka.errors import SetupError

    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SetupError, match="needs Java 17 or later; .* is 11"):
        java_command()
