"""A local multi-node Ray cluster on this machine, for tests, benchmarks and trying things out: real Ray nodes
(``ray.cluster_utils.Cluster``), one machine.

Kept apart from the machine: a short temp dir (Ray's socket paths are limited to 107 bytes), a small object store
per node, no dashboard, no usage stats, no auto-connect, token auth off (so nothing is written under the home
directory), and each node told its own CPU and memory. Kept cheap: no autoscaler monitor (the nodes are fixed) and no
log monitor (nothing is logged to the driver); without them a start costs about a second of CPU less and a shutdown
about a second less. It is shut down with its own handle, never ``ray stop``
(which would end every Ray process of the user).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psutil

RAY_ENV = {
    "RAY_ENABLE_AUTO_CONNECT": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_DEDUP_LOGS": "0",
}
NODE_MEMORY = 2 * 1024**3
OBJECT_STORE = 80 * 1024**2


@dataclass
class LocalCluster:
    """A started cluster: its address, and the processes still running from it."""

    cluster: Any
    temp_dir: str

    @property
    def address(self) -> str:
        """The address a driver passes to ``ray.init`` (or ``leanworker run --ray``)."""
        return str(self.cluster.address)

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster still running: its command line names the temp dir (Ray's services), or
        its environment does (Ray's workers, which rename themselves ``ray::...``, and what they started)."""
        found = []
        for process in psutil.process_iter(["cmdline"]):
            try:
                if process.pid == os.getpid():
                    continue
                if any(self.temp_dir in part for part in process.info["cmdline"] or ()) or \
                        process.environ().get("RAY_TMPDIR") == self.temp_dir:
                    found.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found


@contextmanager
def local_cluster(nodes: int = 2, cpus_per_node: int = 1) -> Iterator[LocalCluster]:
    """Start ``nodes`` Ray nodes on this machine, connect this process, and tear it all down afterwards.

    It sets Ray's environment variables in this process (``RAY_ENV``, ``RAY_TMPDIR``) so that the nodes and this
    driver agree on them; they stay set afterwards.
    """
    os.environ.update(RAY_ENV)
    temp_dir = tempfile.mkdtemp(prefix="lwray", dir="/tmp")
    os.environ["RAY_TMPDIR"] = temp_dir
    ray_dir = os.path.join(temp_dir, "ray")
    os.makedirs(ray_dir)
    import ray
    from ray.cluster_utils import Cluster

    node: dict[str, Any] = {"num_cpus": cpus_per_node, "object_store_memory": OBJECT_STORE, "memory": NODE_MEMORY,
                            "include_log_monitor": False}
    cluster = Cluster(initialize_head=True, head_node_args={
        **node, "include_dashboard": False, "no_monitor": True, "temp_dir": ray_dir})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(**node)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level=logging.ERROR, log_to_driver=False)
        yield LocalCluster(cluster, temp_dir)
    finally:
        ray.shutdown()
        cluster_shutdown: Any = cluster.shutdown  # untyped in Ray
        cluster_shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
