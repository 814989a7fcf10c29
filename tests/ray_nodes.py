"""A Ray cluster of two nodes on this machine, one CPU each, with token authentication, for as
long as this process's stdin stays open: ``python -m tests.ray_nodes``.

Ray's own ``ray.cluster_utils.Cluster`` starts the head (GCS and raylet) and a second raylet
as processes of their own. This process prints one JSON line, the GCS address and the second
node's raylet pid (for a test to SIGKILL), then waits; at the end of stdin it shuts the
cluster down. It runs apart from the tests' process, so that the token and Ray's state stay
out of it. The token comes in ``RAY_AUTH_TOKEN``."""

from __future__ import annotations

import json
import sys

from ray.cluster_utils import Cluster


def main() -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        second = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        raylet = second.all_processes["raylet"][0].process.pid
        print(json.dumps({"address": cluster.address, "raylet": raylet}), flush=True)
        sys.stdin.read()
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
