"""What the job service costs on top of the Python API, and how many status requests it answers.

Run (tiny models, CPU, about a minute on an idle machine):

    python benchmarks/bench_service.py [--jobs 5] [--seconds 5] [--clients 4]

1. Overhead per job: the same tiny ``generate`` job (tiny SD 1.5-architecture model, 64 px, 2 steps,
   1 image) called directly through ``facechain.generate`` in this process, and submitted to a
   ``facechain serve`` on loopback through ``facechain.Client.run`` (submit -> server-sent events ->
   done; downloading results is not counted), alternately, one torch thread each. The first job of
   each is "cold" (pipeline built; for the service also the worker process started); the others
   "warm". Overhead = service - direct, per job.
2. Status requests per second while a training job runs in the worker: ``--clients`` threads
   issue ``GET /v1/jobs/{id}`` for ``--seconds`` seconds (keep-alive connections), with latencies.

Timings of tiny models measure the service's own cost (HTTP, SQLite, processes), which is what a
real model's seconds-to-minutes job adds on top of its compute.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PHOTOS = [REPO.parent / "shared" / "faces" / "obama" / n for n in
          ("obama_2012_official_portrait.jpg", "obama_2010_blue_room_crop.jpg")]
GEN = dict(style_prompt="{trigger}, studio portrait", size="64", steps=2, num_images=1, fusion="none")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_jobs(client, n: int, base: Path) -> tuple[list[float], list[float]]:
    """Seconds per job, direct and through the service, alternating so both see the same machine load."""
    import facechain

    direct, service = [], []
    for i in range(n):
        direct.append(timed(lambda: facechain.generate("bench", seed=i, progress=False, base_model=str(base), **GEN)))
        service.append(timed(lambda: client.run("generate", person="bench", seed=i, quiet=True, base_model=str(base),
                                                **GEN)))
    return direct, service


def status_rate(url: str, job_id: str, clients: int, seconds: float) -> tuple[float, list[float]]:
    import httpx

    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def hammer() -> None:
        mine = []
        with httpx.Client(base_url=url) as http:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                r = http.get(f"/v1/jobs/{job_id}")
                assert r.status_code == 200 and r.json()["state"] == "running", r.text
                mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / seconds, latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=5, help="jobs per path (the first is cold)")
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of the status-request run")
    ap.add_argument("--clients", type=int, default=4, help="concurrent status clients")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="facechain-bench-service-"))
    home = root / "home"
    # one torch thread here and in the server's worker (it inherits OMP_NUM_THREADS): the same compute
    os.environ.update(FACECHAIN_HOME=str(home), FACECHAIN_OFFLINE="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    import torch

    torch.set_num_threads(1)
    import facechain
    from facechain.testing.server import ServerProcess
    from facechain.testing.tiny import save_tiny_sd

    base = save_tiny_sd(root / "models" / "tiny-sd")
    facechain.train(PHOTOS, name="bench", base_model=str(base), resolution=64, steps=2, retouch=False, progress=False)

    server = ServerProcess(home, "--model-root", root / "models").start()
    try:
        with facechain.Client(server.url) as client:
            direct, service = interleaved_jobs(client, args.jobs, base)
            ids = client.upload(PHOTOS)
            long = client.submit("train", photos=ids, name="busy", base_model=str(base), resolution=64, steps=100_000,
                                 retouch=False)
            deadline = time.monotonic() + 600
            while not client.job(long.id).message.startswith("training ") and time.monotonic() < deadline:
                time.sleep(0.2)
            rate, lat = status_rate(server.url, long.id, args.clients, args.seconds)
            client.cancel(long.id)
    finally:
        server.stop()

    warm_d, warm_s = statistics.median(direct[1:]), statistics.median(service[1:])
    print(f"\nfacechain service overhead (tiny generate job: 64 px, 2 steps, 1 image; {args.jobs} jobs each, "
          f"first = cold)\n")
    print(f"{'path':<34}{'cold job s':>12}{'warm job s (median)':>22}")
    print(f"{'Python API (facechain.generate)':<34}{direct[0]:>12.3f}{warm_d:>22.3f}")
    print(f"{'service (Client: submit..done)':<34}{service[0]:>12.3f}{warm_s:>22.3f}")
    print(f"{'overhead per job':<34}{service[0] - direct[0]:>12.3f}{warm_s - warm_d:>22.3f}")
    lat_ms = sorted(x * 1000 for x in lat)
    p95 = lat_ms[int(0.95 * (len(lat_ms) - 1))]
    print(f"\nstatus requests while a training job runs ({args.clients} clients, {args.seconds:g} s): "
          f"{rate:.0f} requests/s, latency median {statistics.median(lat_ms):.1f} ms, p95 {p95:.1f} ms")
    print(f"(machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; files in {root})")


if __name__ == "__main__":
    main()
