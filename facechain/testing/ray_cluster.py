"""A real Ray cluster of several nodes on this machine (loopback), for tests and benchmarks.

Each node is a ``ray start`` (the head, then workers joining it with ``--address``), so the Ray
executor meets what it meets on a real cluster: separate raylets, node ids, worker processes that
can be killed. Nodes declare resources (``num_gpus``: Ray hands out the ids without checking for a
device, so GPU-kind jobs schedule on a machine without one) and their own ports, so a test
cluster never collides with another Ray on the machine.

Stopping kills the nodes' process groups (every daemon ``ray start`` spawns stays in its group),
never other Ray processes of the machine (``ray stop`` would kill those too).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .server import PACKAGE_ROOT, free_port


@dataclass
class NodeSpec:
    """What one node declares to Ray."""

    num_cpus: int = 1
    num_gpus: int = 0
    resources: dict[str, float] = field(default_factory=dict)


def _ray_cli() -> list[str]:
    return [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())"]


class LocalRayCluster:
    """``ray start --head`` plus ``ray start --address`` workers on 127.0.0.1; ``stop()`` ends them all."""

    def __init__(self, folder: Path, nodes: list[NodeSpec], env: dict[str, str] | None = None,
                 object_store_bytes: int = 80 * 2**20):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.specs = list(nodes)
        self.object_store_bytes = object_store_bytes
        base = dict(os.environ)
        base.pop("FACECHAIN_HOME", None)  # a node has no home of its own: the service passes its own
        base.pop("RAY_ADDRESS", None)
        self.env = {**base, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), base.get("PYTHONPATH")])),
                    "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1", **(env or {})}
        # Ray's sockets live under its temp dir, and a socket path may not exceed 107 bytes: a short folder
        # of its own in the system's temp dir (a test's tmp_path can be too deep), removed by stop()
        self.temp_dir = Path(tempfile.mkdtemp(prefix="fcray-"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.groups: list[int] = []  # one process group per node
        # worker ports below the kernel's ephemeral range, where free_port() picks the nodes' other ports
        self._worker_ports = random.Random(os.getpid() ^ self.port).randrange(12000, _ephemeral_low() - 1000, 400)

    def _ports(self, index: int, head: bool) -> list[str]:
        low = self._worker_ports + 200 * index
        args = ["--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
                "--min-worker-port", str(low), "--max-worker-port", str(low + 199),
                "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
                "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port())]
        if head:
            args += ["--port", str(self.port), "--ray-client-server-port", str(free_port()),
                     "--include-dashboard", "false", "--temp-dir", str(self.temp_dir)]
        else:
            args += ["--address", self.address]
        return args

    def _start_node(self, index: int, spec: NodeSpec, timeout: float) -> None:
        head = index == 0
        cmd = [*_ray_cli(), "start", "--node-ip-address", "127.0.0.1", "--num-cpus", str(spec.num_cpus),
               "--num-gpus", str(spec.num_gpus), "--object-store-memory", str(self.object_store_bytes),
               "--disable-usage-stats", *self._ports(index, head)]
        if spec.resources:
            cmd += ["--resources", json.dumps(spec.resources)]
        if head:
            cmd.append("--head")
        log = self.folder / f"node{index}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.groups.append(proc.pid)  # the daemons it spawns stay in its process group
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        if code != 0:
            self.stop()
            raise RuntimeError(f"'ray start' for node {index} failed ({code}): {log.read_text()[-2000:]}")

    def start(self, timeout: float = 180.0) -> "LocalRayCluster":
        for index, spec in enumerate(self.specs):
            self._start_node(index, spec, timeout)
        return self

    def start_in_background(self, timeout: float = 180.0) -> "Starting":
        """Start the nodes in a thread; ``.wait()`` on the result returns the address (or raises)."""
        return Starting(self, timeout)

    def node_pids(self, index: int) -> list[int]:
        """Live processes of node ``index`` (its raylet, agents and workers)."""
        return _live_members({self.groups[index]})

    def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM every node's process group, SIGKILL what is left after ``timeout`` (a test cluster keeps no state)."""
        for pgid in reversed(self.groups):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _live_members(set(self.groups)):
            time.sleep(0.2)
        for pgid in self.groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        self.groups = []
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "LocalRayCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


class Starting:
    """A cluster starting in a background thread."""

    def __init__(self, cluster: LocalRayCluster, timeout: float):
        self.cluster, self.error = cluster, None
        self._thread = threading.Thread(target=self._run, args=(timeout,), name="ray-cluster-start", daemon=True)
        self._thread.start()

    def _run(self, timeout: float) -> None:
        try:
            self.cluster.start(timeout)
        except BaseException as e:  # handed to whoever waits
            self.error = e

    def wait(self) -> str:
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.cluster.address


def _live_members(groups: set[int]) -> list[int]:
    """Processes (not zombies) in the process groups ``groups``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) in groups:  # state, ppid, pgrp
                found.append(int(entry.name))
    return found
