"""What running jobs on Ray costs per job, and what warm-worker routing saves in base-model loads.

Run (tiny models, CPU; starts a two-node Ray cluster on loopback, a few minutes on an idle machine):

    python benchmarks/bench_ray.py [--jobs 6] [--batch 20] [--ray-address HOST:PORT]

1. Per-job overhead: the same tiny ``generate`` job (tiny SD 1.5-architecture model, 64 px, 2 steps,
   1 image) called directly in this process, then submitted one at a time to the job queue with
   the local executor (worker processes here) and with the Ray executor (warm actors on the
   cluster). Latency is submit -> succeeded as a client sees it (store polled every 10 ms); the
   first job of each path is cold (worker and pipeline started), the others warm.
   Overhead = latency - the direct call (warm medians).
2. Base-model loads of a 20-job mixed batch: generate jobs on three base models (copies of the
   tiny model in three folders: a different model to the pipeline cache), shuffled with a fixed
   seed, all queued at once on two warm Ray workers (one per node), first with routing off
   (first come, first served), then on (a worker takes the jobs for the model it holds first).
   Loads = base models built by the workers' pipeline caches during the batch.

Tiny models make the compute negligible, so the times are the executors' own costs; a real SD 1.5
load takes seconds to tens of seconds (docs/scale.md), which is what the load counts multiply.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PHOTO = REPO.parent / "shared" / "faces" / "obama" / "obama_small.jpg"
GEN = dict(person="bench", prompt="{trigger}, studio portrait", size="64", steps=2, num_images=1, fusion="none")


def wait(store, job_id: str, poll: float = 0.01, timeout: float = 600.0):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        job = store.get(job_id)
        if job.state.finished:
            if job.state.value != "succeeded":
                raise RuntimeError(f"job {job_id} {job.state.value}: {job.error}")
            return job
        time.sleep(poll)
    raise TimeoutError(job_id)


def one_job(service, i: int, base: Path) -> tuple[float, float]:
    """(submit -> succeeded seconds as a client sees it, seconds the job ran in its worker)."""
    t = time.perf_counter()
    job, _ = service.submit_job("generate", {**GEN, "seed": i, "base_model": str(base)})
    done = wait(service.store, job.id)
    latency = time.perf_counter() - t
    placement = (done.result or {}).get("placement")
    ran = placement["seconds"] if placement else done.finished - done.started  # Ray: timed in the actor
    return latency, ran


def direct(i: int, base: Path) -> float:
    import facechain

    params = {k: v for k, v in GEN.items() if k != "person"}
    t = time.perf_counter()
    facechain.generate("bench", seed=i, quiet=True, base_model=str(base), **params)
    return time.perf_counter() - t


def service_for(executor: str, root: Path, address: str | None = None, routing: bool = True, models: Path | None = None):
    from facechain.service.app import Service
    from facechain.service.settings import ServiceSettings

    settings = ServiceSettings(root=root, executor=executor, ray_address=address, ray_routing=routing,
                               model_roots=[models] if models else [], ray_workers=2 if executor == "ray" else None)
    service = Service(settings)
    service.executor.start()
    return service


def ready_workers(service, n: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while len([r for r in service.executor.describe() if r.get("ready") and r["pool"].startswith("gpu")]) < n:
        if time.monotonic() > deadline:
            raise TimeoutError("Ray workers did not start")
        time.sleep(0.2)


def mixed_batch(service, bases: list[Path], n: int) -> tuple[int, float, int]:
    """Queue ``n`` jobs over ``bases`` at once; (base-model loads, wall seconds, warm starts)."""
    rng = random.Random(7)
    order = [bases[i % len(bases)] for i in range(n)]
    rng.shuffle(order)
    before = sum(r["base_model_loads"] for r in service.executor.describe())
    t = time.perf_counter()
    ids = [service.submit_job("generate", {**GEN, "seed": i, "base_model": str(b)})[0].id for i, b in enumerate(order)]
    jobs = [wait(service.store, j, poll=0.05) for j in ids]
    seconds = time.perf_counter() - t
    loads = sum(r["base_model_loads"] for r in service.executor.describe()) - before
    return loads, seconds, sum(1 for j in jobs if j.result["placement"]["warm"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=6, help="sequential tiny jobs per path (the first is cold)")
    ap.add_argument("--batch", type=int, default=20, help="jobs in the mixed batch")
    ap.add_argument("--ray-address", help="use this Ray cluster (default: start two nodes on loopback)")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="facechain-bench-ray-"))
    home = root / "home"
    os.environ.update(FACECHAIN_HOME=str(home), FACECHAIN_OFFLINE="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    import torch

    torch.set_num_threads(1)
    import facechain
    from facechain.testing.ray_cluster import LocalRayCluster, NodeSpec
    from facechain.testing.tiny import save_tiny_sd

    models = root / "models"
    base = save_tiny_sd(models / "tiny-a")
    bases = [base]
    for name in ("tiny-b", "tiny-c"):
        bases.append(Path(shutil.copytree(base, models / name)))
    facechain.train([PHOTO], name="bench", base_model=str(base), size=64, steps=2, retouch=False, quiet=True)

    cluster = None
    address = args.ray_address
    if address is None:
        t = time.perf_counter()
        cluster = LocalRayCluster(root / "ray", [NodeSpec(num_cpus=2, num_gpus=1), NodeSpec(num_cpus=2, num_gpus=1)]).start()
        address = cluster.address
        print(f"two-node Ray cluster up in {time.perf_counter() - t:.1f} s", flush=True)
    rows: dict[str, list[tuple[float, float]]] = {"Python API (direct)": [], "local executor": [], "Ray executor": []}
    startup, batch = {}, {}
    try:
        local = service_for("local", home / "service-local", models=models)
        t = time.perf_counter()
        ray_svc = service_for("ray", home / "service-ray", address, True, models)
        ready_workers(ray_svc, 2)
        startup["Ray executor"] = time.perf_counter() - t  # connect, storage check, warm workers started
        try:
            for i in range(args.jobs):  # interleaved: all three paths see the same machine load
                d = direct(i, base)
                rows["Python API (direct)"].append((d, d))
                rows["local executor"].append(one_job(local, i, base))
                rows["Ray executor"].append(one_job(ray_svc, i, base))
        finally:
            local.executor.stop()
            ray_svc.executor.stop()
        for routing in (False, True):  # fresh workers each time: nothing loaded before the batch
            fresh = service_for("ray", home / f"service-ray-batch-{routing}", address, routing, models)
            try:
                ready_workers(fresh, 2)
                batch[routing] = mixed_batch(fresh, bases, args.batch)
            finally:
                fresh.executor.stop()
    finally:
        if cluster is not None:
            import ray

            if ray.is_initialized():
                ray.shutdown()
            cluster.stop()

    print(f"\n1. per-job cost, tiny generate job (64 px, 2 steps, 1 image), {args.jobs} jobs one at a time per path, "
          "interleaved\n")
    print(f"{'path':<22}{'start-up s':>11}{'cold job s':>11}{'warm: latency s':>16}{'in worker s':>12}"
          f"{'overhead s':>11}")
    for name, times in rows.items():
        started = f"{startup[name]:.1f}" if name in startup else "-"
        warm = times[1:]
        latency = statistics.median(t[0] for t in warm)
        ran = statistics.median(t[1] for t in warm)
        over = "-" if name.startswith("Python") else f"{statistics.median(t[0] - t[1] for t in warm):.3f}"
        print(f"{name:<22}{started:>11}{times[0][0]:>11.2f}{latency:>16.3f}{ran:>12.3f}{over:>11}")
    print("(warm = median of jobs 2..n; overhead = latency - time in the worker: queue, dispatch, result)")
    print(f"\n2. {args.batch}-job mixed batch on {len(bases)} base models, 2 warm Ray workers\n")
    print(f"{'routing':<28}{'base-model loads':>18}{'warm starts':>13}{'wall s':>9}")
    for routing, label in ((False, "off (first come, first served)"), (True, "on (warm worker first)")):
        loads, seconds, warm = batch[routing]
        print(f"{label:<28}{loads:>18}{warm:>13}{seconds:>9.1f}")
    print(f"(lower bound: {len(bases)} loads, one per model; machine: {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; files in {root})")


if __name__ == "__main__":
    main()
