"""Run the service's jobs on a Ray cluster: ``facechain serve --executor ray [--ray-address ...]``.

We do not schedule across machines ourselves: Ray places workers on nodes that have the resources
a job kind asks for (GPU kinds: ``{"num_gpus": 1, "num_cpus": 1}``; preparation: ``{"num_cpus":
1}``; both configurable per kind), restarts nothing behind our back, and tells us when a worker
or its node is gone. What stays ours is the durable queue (the same SQLite store as the local
executor, touched only by this process) and the policy:

* **Warm workers.** Each pool (kinds with the same resources) keeps ``ray_workers`` long-lived
  :class:`~facechain.service.ray_worker.WarmWorker` actors (default: as many as the cluster's
  resources fit; ``cpu_workers`` for preparation), started with the service and replaced when
  lost. A worker keeps its loaded base model, ControlNets and FACT components between jobs.
* **Routing by base model.** An idle worker claims the queued job it is warm for first
  (:mod:`.routing`; a preference with an age limit, like Ray Serve's model multiplexing). Each
  start of a job is stored as an ``attempt`` event (worker, node, pid, warm or cold) and a
  succeeded job's result carries its ``placement``.
* **Faults.** A worker that dies mid-job (process killed, out of memory, node lost) is replaced
  and its job is queued again for any worker; training then resumes from its last checkpoint
  (the train kind re-runs with ``resume=True`` into the identity's fixed folder). After
  ``max_attempts`` deaths the job ends failed with the reason; a job's own error (bad input)
  fails it at once, and a finished job is never run again.
* **Shared storage.** Before anything runs, a task on every node checks that it sees this
  service's ``FACECHAIN_HOME`` (:mod:`.shared_storage`); otherwise the service refuses to start
  and names the node.

One dispatcher thread does every Ray call; the web app's threads only wake it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import FacechainError
from ..options import RAY_RESOURCE_KEYS, did_you_mean
from .executor import InstanceLock, LocalExecutor
from .jobs import Job, JobState
from .kinds import all_kinds, get_kind
from .routing import CACHED_KINDS, base_model_key, warm_preference
from .settings import ServiceSettings
from .shared_storage import Marker, probe, verify, write_marker
from .store import JobStore

log = logging.getLogger(__name__)

GPU_DEFAULT: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1}
CPU_DEFAULT: dict[str, Any] = {"num_cpus": 1}
#: Variables a worker gets from the server (FACECHAIN_HOME is always passed: every node uses the same path).
PASSED_ENV = ("FACECHAIN_OFFLINE", "HF_HUB_OFFLINE", "HF_HOME", "FACECHAIN_MODELS", "FACECHAIN_API_TOKEN")

_TICK_S = 0.2
_DRAIN_EVERY_S = 0.4
_STOP_GRACE_S = 20.0
_PROBE_TIMEOUT_S = 180.0
_RETRY_SPAWN_S = 10.0


def resources_for(kind: str, device: str, configured: dict[str, dict]) -> dict[str, Any]:
    """Ray resources of the workers that run ``kind`` (configured per kind, checked by
    :mod:`facechain.options`' ``ray_resources``; else by its device)."""
    chosen = configured.get(kind)
    return dict(GPU_DEFAULT if device == "gpu" else CPU_DEFAULT) if chosen is None else dict(chosen)


def pool_capacity(resources: dict[str, Any], cluster: dict[str, float]) -> int:
    """How many workers with ``resources`` the cluster's totals fit (0: none)."""
    need = {"CPU": resources.get("num_cpus", 0), "GPU": resources.get("num_gpus", 0),
            "memory": resources.get("memory", 0), **(resources.get("resources") or {})}
    fits = [math.floor(cluster.get(name, 0.0) / amount + 1e-9) for name, amount in need.items() if amount]
    return min(fits) if fits else 1


@dataclass
class Pool:
    """Workers that share one resource shape, and the kinds they run."""

    name: str
    resources: dict[str, Any]
    kinds: set[str]
    size: int
    workers: list["WorkerSlot"] = field(default_factory=list)
    spawned: int = 0
    next_spawn: float = 0.0


@dataclass
class WorkerSlot:
    """The server's view of one warm worker actor."""

    name: str
    pool: Pool
    actor: Any
    ready_ref: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    builds: int = 0
    job: Job | None = None
    placement: dict[str, Any] = field(default_factory=dict)
    run_ref: Any = None
    drain_ref: Any = None
    drained_at: float = 0.0
    cancel_sent: float | None = None
    interrupt_sent: bool = False
    jobs_done: int = 0

    @property
    def ready(self) -> bool:
        return self.ready_ref is None and bool(self.info)

    @property
    def idle(self) -> bool:
        return self.ready and self.job is None


class RayExecutor:
    """The :class:`~facechain.service.executor.Executor` that runs jobs on Ray (see the module docstring)."""

    def __init__(self, settings: ServiceSettings, store: JobStore):
        self.settings, self.store = settings, store
        self.stopping = threading.Event()
        self.wakeup = threading.Event()
        self.lock: InstanceLock | None = None
        self.pools: list[Pool] = []
        self.marker: Marker | None = None
        self.nodes: list[dict[str, Any]] = []
        self._thread: threading.Thread | None = None
        self._owns_ray = False
        self._recovered_at = 0.0
        self._keys: dict[str, str] = {}
        self._env: dict[str, Any] | None = None

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect, check the nodes' storage, and start dispatching (a second call does nothing)."""
        if self._thread is not None:
            return
        ray = _import_ray()
        address = self.settings.ray_address or os.environ.get("RAY_ADDRESS") or None
        problem = unreachable(address)
        if problem:  # ray.init would retry for minutes
            raise FacechainError(f"cannot connect to the Ray cluster at {address}: {problem}")
        if not ray.is_initialized():  # (a process already connected, e.g. a test session, keeps its connection)
            try:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise FacechainError(f"cannot connect to the Ray cluster at {address or 'a new local Ray'}: "
                                     f"{' '.join(str(e).split())[:300]}") from None
            self._owns_ray = True
        try:
            self.nodes = self.check_shared_storage()
            self.pools = self._make_pools(ray.cluster_resources())
        except BaseException:
            self._shutdown_ray()
            raise
        self.lock = InstanceLock(self.settings.root / "instances")
        self.maybe_recover(force=True)
        self._thread = threading.Thread(target=self._loop, name="facechain-ray-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout=_STOP_GRACE_S + 30)
        if self.lock is not None:
            self.lock.release()
        self._shutdown_ray()

    def _shutdown_ray(self) -> None:
        if self._owns_ray:
            import ray

            ray.shutdown()
            self._owns_ray = False

    def wake(self) -> None:
        self.wakeup.set()

    def cancel(self, job_id: str) -> None:
        self.wake()  # the dispatcher sees the store's cancel flag and tells the worker

    def describe(self) -> list[dict[str, Any]]:
        rows = []
        for pool in self.pools:
            for w in list(pool.workers):
                job = w.job
                rows.append({"slot": w.name, "pool": pool.name, "kinds": sorted(pool.kinds), "resources": pool.resources,
                             "pid": w.info.get("pid"), "node": w.info.get("ip"), "node_id": w.info.get("node_id"),
                             "ready": w.ready, "job": job.id if job else None, "jobs_done": w.jobs_done,
                             "held": sorted(w.held), "base_model_loads": w.builds})
        return rows

    # -- start-up checks ---------------------------------------------------------------------------
    def _runtime_env(self) -> dict[str, Any]:
        """The environment of every task and worker: taken once, when the service starts, so a worker
        started later (a replacement) sees the same FACECHAIN_HOME whatever this process's environment is
        by then."""
        if self._env is None:
            from ..paths import facechain_home

            env = {"FACECHAIN_HOME": str(facechain_home().expanduser().resolve())}
            env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
            self._env = {"env_vars": env}
        return self._env

    def check_shared_storage(self) -> list[dict[str, Any]]:
        """A task on each alive node reads the marker and writes a reply; refuse to start otherwise."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.marker = write_marker(self.settings.root)
        nodes = [{"node_id": n["NodeID"], "ip": n.get("NodeManagerAddress"), "resources": n.get("Resources", {})}
                 for n in ray.nodes() if n.get("Alive")]
        task = ray.remote(num_cpus=0)(probe)
        refs = {n["node_id"]: task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["node_id"], soft=False),
                                           runtime_env=self._runtime_env(), max_retries=0)
                .remote(self.marker, n["node_id"]) for n in nodes}
        results: dict[str, Any] = {}
        deadline = time.monotonic() + _PROBE_TIMEOUT_S
        for node_id, ref in refs.items():
            try:
                results[node_id] = ray.get(ref, timeout=max(1.0, deadline - time.monotonic()))
            except Exception as e:  # import error on the node, node lost, timeout
                results[node_id] = e
        verify(self.marker, nodes, results)
        for n in nodes:
            n["host"] = results[n["node_id"]].get("host")
        log.info("shared storage checked on %d node(s): %s", len(nodes), ", ".join(f"{n['ip']}" for n in nodes))
        return nodes

    def _make_pools(self, cluster: dict[str, float]) -> list[Pool]:
        kinds = all_kinds()
        for name in self.settings.ray_resources:
            if name not in kinds:
                raise FacechainError(f"--ray-resources {name}: no such job kind ({did_you_mean(name, sorted(kinds))})")
        by_shape: dict[str, Pool] = {}
        for kind in kinds.values():
            res = resources_for(kind.name, kind.device, self.settings.ray_resources)
            shape = json.dumps(res, sort_keys=True)
            if shape not in by_shape:
                gpu_like = kind.device == "gpu"
                cap = pool_capacity(res, cluster)
                if cap < 1:
                    raise FacechainError(f"the Ray cluster cannot fit a worker for '{kind.name}' jobs: they ask for "
                                         f"{json.dumps(res)} and the cluster has {_summary(cluster)}; declare resources "
                                         "on the nodes (ray start --num-gpus/--resources) or pass --ray-resources "
                                         f"{kind.name}=JSON")
                want = self.settings.ray_workers if gpu_like else self.settings.cpu_workers
                size = max(1, min(cap, want) if want else cap)
                by_shape[shape] = Pool(f"{'gpu' if gpu_like else 'cpu'}{len(by_shape)}", res, set(), size)
            by_shape[shape].kinds.add(kind.name)
        return list(by_shape.values())

    # -- the dispatcher ------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.wakeup.clear()
            try:
                self._spawn_workers()
                self._dispatch()
                self._collect(timeout=_TICK_S)
                self._check_cancels()
                self.maybe_recover()
            except Exception:  # never let one bad turn stop the service
                log.exception("ray executor: dispatcher turn failed")
                time.sleep(1.0)
        self._shutdown_workers()

    def _spawn_workers(self) -> None:
        """Keep every pool at its size: warm workers are started up front and replaced when lost."""
        t = time.monotonic()
        for pool in self.pools:
            while len(pool.workers) < pool.size and t >= pool.next_spawn and not self.stopping.is_set():
                self._spawn(pool)

    def _spawn(self, pool: Pool) -> WorkerSlot:
        import ray

        from .ray_worker import WarmWorker

        name = f"{pool.name}-w{pool.spawned}"
        pool.spawned += 1
        opts = {k: v for k, v in pool.resources.items() if k in RAY_RESOURCE_KEYS}
        actor_cls = ray.remote(WarmWorker).options(max_concurrency=4, max_restarts=0, max_task_retries=0,
                                                   runtime_env=self._runtime_env(), **opts)
        settings = {"root": str(self.settings.root), "max_upload_bytes": self.settings.max_upload_bytes,
                    "max_upload_pixels": self.settings.max_upload_pixels, "cancel_grace_s": self.settings.cancel_grace_s}
        actor = actor_cls.remote(settings, self.marker.to_json() if self.marker else None, name)
        slot = WorkerSlot(name, pool, actor, ready_ref=actor.hello.remote())
        pool.workers.append(slot)
        log.info("starting warm worker %s (%s)", name, json.dumps(pool.resources))
        return slot

    def _slots(self) -> list[WorkerSlot]:
        return [w for pool in self.pools for w in pool.workers]

    def key_of(self, job: Job) -> str:
        if job.id not in self._keys:
            self._keys[job.id] = base_model_key(job, self.store.get)
        return self._keys[job.id]

    def _dispatch(self) -> None:
        for slot in self._slots():
            if self.stopping.is_set() or not slot.idle:
                continue
            prefer = None
            if self.settings.ray_routing:
                others = [o for o in slot.pool.workers if o is not slot and o.ready]
                idle_others = [o.held for o in others if o.job is None]
                busy_held = {k for o in others if o.job is not None for k in o.held}
                if slot.held or any(idle_others) or busy_held:
                    prefer = warm_preference(slot.held, self.key_of, idle_others, busy_held)
            job = self.store.claim_next(self.lock.id, slot.pool.kinds, prefer=prefer)
            if job is not None:
                self._start(slot, job)

    def _start(self, slot: WorkerSlot, job: Job) -> None:
        key = self.key_of(job)
        warm = job.kind in CACHED_KINDS and key in slot.held
        slot.job, slot.cancel_sent, slot.interrupt_sent = job, None, False
        slot.placement = {"worker": slot.name, "node": slot.info.get("ip"), "node_id": slot.info.get("node_id"),
                          "host": slot.info.get("host"), "pid": slot.info.get("pid"), "attempt": job.attempts,
                          "base_model": key, "warm": warm}
        self.store.add_event(job.id, {"type": "attempt", **slot.placement},
                             message=f"running on {slot.name} (node {slot.info.get('ip')}, {'warm' if warm else 'cold'})")
        uploads = {}
        for upload_id in _upload_ids(job):
            rec = self.store.get_upload(upload_id)
            if rec is not None:
                uploads[upload_id] = rec.to_json()
        slot.run_ref = slot.actor.run.remote(job.to_json(), uploads, key)
        slot.drained_at = time.monotonic()

    def _pending(self) -> dict[Any, tuple[WorkerSlot, str]]:
        refs: dict[Any, tuple[WorkerSlot, str]] = {}
        t = time.monotonic()
        for slot in self._slots():
            if slot.ready_ref is not None:
                refs[slot.ready_ref] = (slot, "ready")
            if slot.run_ref is not None:
                refs[slot.run_ref] = (slot, "run")
                if slot.drain_ref is None and t - slot.drained_at >= _DRAIN_EVERY_S:
                    slot.drain_ref = slot.actor.drain.remote()
                if slot.drain_ref is not None:
                    refs[slot.drain_ref] = (slot, "drain")
        return refs

    def _collect(self, timeout: float) -> None:
        import ray

        refs = self._pending()
        if not refs:
            self.wakeup.wait(timeout)
            return
        done, _ = ray.wait(list(refs), num_returns=1, timeout=timeout)
        if done:
            done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
        # drains first: a job's last progress events go in before its end state
        for ref in sorted(done, key=lambda r: refs[r][1] != "drain"):
            slot, what = refs[ref]
            if ref != {"ready": slot.ready_ref, "run": slot.run_ref, "drain": slot.drain_ref}[what]:
                continue  # its worker was already given up in this turn
            try:
                value = ray.get(ref)
            except Exception as e:
                self._worker_failed(slot, what, e)
                continue
            if what == "ready":
                slot.ready_ref, slot.info = None, value
                slot.held, slot.builds = set(value.get("held", [])), value.get("builds", 0)
                log.info("warm worker %s ready on %s (pid %s)", slot.name, value.get("ip"), value.get("pid"))
            elif what == "drain":
                slot.drain_ref, slot.drained_at = None, time.monotonic()
                self._store_events(slot, value)
            elif what == "run":
                self._finished(slot, value)

    def _store_events(self, slot: WorkerSlot, events: list[dict[str, Any]]) -> None:
        if slot.job is None:
            return
        for e in events:
            self.store.add_progress(slot.job.id, e["data"], e["progress"], e["message"])

    def _finished(self, slot: WorkerSlot, outcome: dict[str, Any]) -> None:
        import ray

        job = slot.job
        assert job is not None
        if slot.drain_ref is not None:  # a drain that crossed the job's end holds events too
            try:
                self._store_events(slot, ray.get(slot.drain_ref, timeout=10))
            except Exception:
                pass
        self._store_events(slot, outcome.get("events", []))
        slot.held, slot.builds = set(outcome.get("held", [])), outcome.get("builds", slot.builds)
        state = JobState(outcome["state"])
        if state is JobState.QUEUED:
            self.store.requeue(job.id, outcome.get("reason") or "re-queued")
        else:
            result = outcome.get("result")
            if state is JobState.SUCCEEDED and isinstance(result, dict):
                result = {**result, "placement": {**slot.placement, "seconds": round(outcome.get("seconds", 0.0), 3)}}
            self.store.finish(job.id, state, error=outcome.get("error"), result=result)
        self._release(slot)
        slot.jobs_done += 1
        self.wake()

    def _release(self, slot: WorkerSlot) -> None:
        if slot.job is not None:
            self._keys.pop(slot.job.id, None)
        slot.job, slot.run_ref, slot.drain_ref = None, None, None

    def _worker_failed(self, slot: WorkerSlot, what: str, error: BaseException) -> None:
        """A worker's call raised: its actor died (or never started); replace it, retry its job elsewhere."""
        import ray

        reason = self._death_reason(slot, error)
        log.warning("warm worker %s (%s) lost: %s", slot.name, slot.info.get("ip") or "starting", reason)
        if slot in slot.pool.workers:
            slot.pool.workers.remove(slot)
        try:
            ray.kill(slot.actor, no_restart=True)
        except Exception:
            pass
        if what == "ready":  # could not start (no facechain there, storage not shared, ...): wait before the next
            slot.pool.next_spawn = time.monotonic() + _RETRY_SPAWN_S
        job = slot.job
        self._release(slot)
        if job is not None:
            self._job_lost(job, slot, reason)
        self.wake()

    def _job_lost(self, job: Job, slot: WorkerSlot, reason: str) -> None:
        if self.stopping.is_set():
            self.store.requeue(job.id, "re-queued: the server stopped while it ran")
            return
        if self.store.cancel_requested(job.id):
            self.store.finish(job.id, JobState.CANCELLED)
            return
        self.store.add_event(job.id, {"type": "attempt_failed", "attempt": job.attempts, "worker": slot.name,
                                      "node": slot.info.get("ip"), "error": reason})
        failures = [e.data.get("error", "") for e in self.store.events(job.id, limit=10_000)
                    if e.data.get("type") == "attempt_failed"]
        if len(failures) >= self.settings.max_attempts:
            same = len(set(failures)) == 1
            self.store.finish(job.id, JobState.FAILED,
                              error=f"its worker died {len(failures)} times{' the same way' if same else ''}: {reason}")
        else:
            self.store.requeue(job.id, f"re-queued after attempt {job.attempts}: {reason}")

    def _death_reason(self, slot: WorkerSlot, error: BaseException) -> str:
        import ray

        node_id = slot.info.get("node_id")
        where = f"worker {slot.name} (pid {slot.info.get('pid')}) on {slot.info.get('ip') or 'its node'}"
        if node_id and not any(n.get("NodeID") == node_id and n.get("Alive") for n in ray.nodes()):
            return f"node {slot.info.get('ip')} was lost"
        if type(error).__name__ == "OutOfMemoryError":
            return f"{where} was killed by Ray's memory monitor (out of memory)"
        text = " ".join(str(error).split())
        if not isinstance(error, ray.exceptions.RayActorError):
            return f"{where} failed: {text[:300]}"
        hint = re.search(r"(exit(?:ed)? (?:with )?code -?\d+|SIG[A-Z]+|killed[^.;]*|out of memory)", text, re.I)
        return f"{where} died ({hint.group(1) if hint else 'unexpectedly'})"

    def _check_cancels(self) -> None:
        import ray

        t = time.monotonic()
        for slot in self._slots():
            job = slot.job
            if job is None or not self.store.cancel_requested(job.id):
                continue
            if slot.cancel_sent is None:
                slot.cancel_sent = t
                slot.actor.cancel.remote(job.id)
            elif t - slot.cancel_sent > self.settings.cancel_grace_s:
                log.warning("job %s ignored its cancel for %.0f s: killing worker %s", job.id, t - slot.cancel_sent,
                            slot.name)
                self.store.finish(job.id, JobState.CANCELLED)
                self._release(slot)
                slot.pool.workers.remove(slot)
                ray.kill(slot.actor, no_restart=True)

    #: Re-queue running jobs of a server instance that died (same rule and attributes as the local executor).
    maybe_recover = LocalExecutor.maybe_recover

    def _shutdown_workers(self) -> None:
        """Stopping: running jobs end at their next step and go back to the queue; then the actors go."""
        import ray

        for slot in self._slots():
            if slot.job is not None:
                slot.actor.interrupt.remote(slot.job.id)
        deadline = time.monotonic() + _STOP_GRACE_S
        while time.monotonic() < deadline and any(s.run_ref is not None for s in self._slots()):
            self._collect(timeout=0.5)
        for slot in self._slots():
            if slot.job is not None:
                self.store.requeue(slot.job.id, "re-queued: the server stopped while it ran")
                self._release(slot)
            try:
                ray.kill(slot.actor, no_restart=True)
            except Exception:
                pass
        for pool in self.pools:
            pool.workers.clear()


def unreachable(address: str | None, timeout: float = 5.0) -> str | None:
    """Why ``host:port`` (or ``ray://host:port``) does not answer a TCP connect; None if it does (or is ``auto``)."""
    if not address or address in ("auto", "local"):
        return None
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except ValueError:
        return "expected HOST:PORT, ray://HOST:PORT or auto"
    except OSError as e:
        return f"nothing answers at {hostport} ({e.strerror or e})"
    return None


def _upload_ids(job: Job) -> list[str]:
    """The upload ids among a job's params (its kind's ``upload``/``uploads`` params)."""
    try:
        roles = get_kind(job.kind).roles
    except Exception:
        return []
    ids: list[str] = []
    for name, role in roles.items():
        value = job.params.get(name)
        if role in ("upload", "uploads") and value:
            ids.extend(value if isinstance(value, list) else [value])
    return [i for i in ids if isinstance(i, str)]


def _summary(cluster: dict[str, float]) -> str:
    shown = {k: v for k, v in cluster.items() if not k.startswith(("node:", "object_store", "memory"))}
    return ", ".join(f"{v:g} {k}" for k, v in sorted(shown.items())) or "no resources"


def _import_ray():
    try:
        import ray
    except ImportError:
        raise FacechainError("the Ray executor needs Ray: pip install 'facechain[ray]'") from None
    return ray
