"""The Ray executor on a real two-node Ray cluster on this machine (head + worker, loopback).

Both nodes declare one GPU (``ray start --num-gpus 1``: Ray hands out the id without a device), so
GPU-kind jobs schedule as on a real cluster and run on the CPU here. One cluster and one running
executor serve the whole session (Ray start-up is the slow part); every test uses its own names.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from facechain.service.jobs import JobState

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.xdist_group("ray-cluster"), pytest.mark.slow]

PEOPLE = {"obama": "obama/obama_small.jpg", "luciano": "codait_luciano/Luciano.png",
          "eileen": "eileen_collins/astronaut.png"}
TRAIN = {"size": 64, "steps": 6, "retouch": False, "seed": 5}
GENERATE = {"size": "64", "steps": 2, "num_images": 1, "seed": 7}


def _plan(faces: Path, base_model: Path) -> dict:
    return {"name": "ray-test", "defaults": {"train": {**TRAIN, "base_model": str(base_model)}, "generate": GENERATE},
            "people": [{"name": name, "photos": str(faces / photo),
                        "styles": [{"label": "studio", "prompt": "{trigger}, studio portrait"},
                                   {"label": "beach", "prompt": "{trigger}, on a beach, sunset"}]}
                       for name, photo in PEOPLE.items()]}


def _wait(store, job_id: str, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get(job_id)
        if job.state.finished:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s: {store.get(job_id)}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """Started in the background (Ray's start-up is mostly waiting): the local reference run goes meanwhile."""
    from facechain.testing.ray_cluster import LocalRayCluster, NodeSpec

    c = LocalRayCluster(tmp_path_factory.mktemp("ray"), [NodeSpec(num_cpus=2, num_gpus=1), NodeSpec(num_cpus=2, num_gpus=1)])
    starting = c.start_in_background()
    try:
        yield SimpleNamespace(cluster=c, ready=starting)
    finally:
        starting.wait()
        if ray.is_initialized():
            ray.shutdown()
        c.stop()


@pytest.fixture(scope="session")
def ray_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rayhome")


@pytest.fixture(scope="session")
def ray_service(cluster, ray_home, tiny_sd_dir):
    """One RayExecutor on the cluster for the session, on its own FACECHAIN_HOME."""
    from facechain.service.ray_executor import RayExecutor
    from facechain.service.settings import ServiceSettings
    from facechain.service.store import JobStore
    from facechain.service.uploads import UploadStore

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACECHAIN_HOME", str(ray_home))
        mp.setenv("FACECHAIN_OFFLINE", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        settings = ServiceSettings(root=ray_home / "service", executor="ray", ray_address=cluster.ready.wait(),
                                   model_roots=[tiny_sd_dir.parent, ray_home / "models"])
        store = JobStore(settings.root)
        uploads = UploadStore(store, settings.uploads_dir, max_bytes=settings.max_upload_bytes,
                              max_pixels=settings.max_upload_pixels)
        executor = RayExecutor(settings, store)
        executor.start()
    try:
        yield SimpleNamespace(settings=settings, store=store, uploads=uploads, executor=executor, home=ray_home)
    finally:
        executor.stop()


@pytest.fixture
def on_ray_home(monkeypatch, ray_service):
    """The test process sees the Ray service's FACECHAIN_HOME (validation looks up identities there)."""
    monkeypatch.setenv("FACECHAIN_HOME", str(ray_service.home))
    return ray_service


@pytest.fixture(scope="session")
def local_batch(tmp_path_factory, faces_dir, tiny_sd_dir):
    """The same plan through the default local executor: the reference for the Ray run."""
    import facechain
    from facechain.batch import parse_plan

    home = tmp_path_factory.mktemp("localhome")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {"FACECHAIN_HOME": str(home), "FACECHAIN_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
                            "OMP_NUM_THREADS": "1"}.items():
            mp.setenv(name, value)
        plan = parse_plan(_plan(faces_dir, tiny_sd_dir), base=faces_dir)
        summary = facechain.batch(plan, executor="local", output=home / "out", model_root=[str(tiny_sd_dir.parent)],
                                  quiet=True)
    return SimpleNamespace(home=home, summary=summary)


def _lora(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "pytorch_lora_weights.safetensors"))


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def test_batch_on_ray_completes_and_matches_the_local_executor(cluster, local_batch, on_ray_home, faces_dir, tiny_sd_dir):
    from facechain.batch import parse_plan, run_batch

    service = on_ray_home
    plan = parse_plan(_plan(faces_dir, tiny_sd_dir), base=faces_dir)
    summary = run_batch(plan, executor=service.executor, output=service.home / "out", settings=service.settings)

    local = local_batch.summary
    assert not local.failed and not summary.failed, (local.to_json(), summary.to_json())
    for ours, theirs in zip(summary.people, local.people):
        assert ours.name == theirs.name and ours.identity == ours.name
        assert [i.state for i in ours.items] == ["succeeded"] * 3
        assert ours.accepted_photos == theirs.accepted_photos == 1
        assert ours.trigger_word == theirs.trigger_word
        # the same identity: LoRA weights equal to the local run's
        a, b = _lora(service.home / "identities" / ours.name), _lora(local_batch.home / "identities" / ours.name)
        assert a.keys() == b.keys()
        assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
        assert any(float(t.abs().max()) > 0 for t in a.values())  # trained: LoRA B moved from zero
        # the same portraits, pixel for pixel
        assert len(ours.portraits) == len(theirs.portraits) == 2
        for mine, ref in zip(sorted(ours.portraits), sorted(theirs.portraits)):
            assert mine == ref
            assert np.abs(_pixels(summary.output / mine) - _pixels(local.output / ref)).max() <= 1
    # every job ran on a Ray worker, and where is recorded with it
    jobs = [service.store.get(i.job_id) for p in summary.people for i in p.items]
    placements = [j.result["placement"] for j in jobs]
    assert all(p["worker"] and p["node_id"] and p["pid"] for p in placements)
    assert all(j.attempts == 1 for j in jobs)
    on_disk = json.loads((summary.output / "summary.json").read_text())
    assert [p["name"] for p in on_disk["people"]] == list(PEOPLE) and on_disk["jobs"] == {"succeeded": 9}

    # a rerun of the same plan redoes nothing
    again = run_batch(plan, executor=service.executor, output=service.home / "out", settings=service.settings)
    assert [i.job_id for p in again.people for i in p.items] == [i.job_id for p in summary.people for i in p.items]
    assert all(service.store.get(i.job_id).attempts == 1 for p in again.people for i in p.items)


def test_killed_worker_mid_training_job_finishes_elsewhere_from_its_checkpoint(on_ray_home, faces_dir, tiny_sd_dir):
    from facechain.service.kinds import ValidationContext, validate

    service = on_ray_home
    steps, every = 40, 4
    with open(faces_dir / PEOPLE["obama"], "rb") as f:
        photo = service.uploads.save(f, "obama.jpg").id
    params = {"photos": [photo], "name": "kill-me", "base_model": str(tiny_sd_dir), **TRAIN, "steps": steps,
              "checkpoint_every": every}
    kind, sub = validate("train", params, ValidationContext(service.store, service.uploads, service.settings))
    job, _ = service.store.create(kind.name, sub.params, claim=sub.claim)
    service.executor.wake()

    work = service.home / "identities" / "kill-me.work"
    deadline = time.monotonic() + 300
    while not any(work.glob("checkpoint-*/state.json")):
        assert time.monotonic() < deadline and not service.store.get(job.id).state.finished, "no checkpoint"
        time.sleep(0.02)
    first = next(e.data for e in service.store.events(job.id) if e.data.get("type") == "attempt")
    os.kill(first["pid"], signal.SIGKILL)
    reached = max(int(p.name.split("-")[1]) for p in work.glob("checkpoint-*"))
    assert every <= reached < steps, "training finished before the kill: raise steps"

    done = _wait(service.store, job.id)
    assert done.state is JobState.SUCCEEDED and done.attempts == 2, done
    events = [e.data for e in service.store.events(job.id)]
    attempts = [e for e in events if e.get("type") == "attempt"]
    failed = [e for e in events if e.get("type") == "attempt_failed"]
    assert len(attempts) == 2 and len(failed) == 1 and str(first["pid"]) in failed[0]["error"]
    assert attempts[1]["worker"] != attempts[0]["worker"] and done.result["placement"]["worker"] == attempts[1]["worker"]
    assert done.result["resumed_from_step"] >= reached  # continued from its checkpoint, not from zero
    manifest = json.loads((service.home / "identities" / "kill-me" / "facechain.json").read_text())
    assert manifest["training"]["steps"] == steps and not work.exists()


def test_job_for_a_base_model_goes_to_the_worker_that_holds_it(on_ray_home, local_batch, tiny_sd_dir):
    from facechain.service.kinds import ValidationContext, validate

    service = on_ray_home
    # an identity to draw (copied from the local run), and a second base model (same weights, another folder)
    shutil.copytree(local_batch.home / "identities" / "obama", service.home / "identities" / "routed")
    manifest = service.home / "identities" / "routed" / "facechain.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "name": "routed"}))
    other = service.home / "models" / "tiny-sd-b"
    shutil.copytree(tiny_sd_dir, other)
    ctx = ValidationContext(service.store, service.uploads, service.settings)

    def submit(base: Path, seed: int) -> str:
        params = {"person": "routed", "prompt": "{trigger}, portrait", "size": "64", "steps": 3, "num_images": 2,
                  "seed": seed, "base_model": str(base)}
        kind, sub = validate("generate", params, ctx)
        job, _ = service.store.create(kind.name, sub.params, after=sub.after)
        service.executor.wake()
        return job.id

    deadline = time.monotonic() + 180
    while len([r for r in service.executor.describe() if r["ready"] and r["pool"].startswith("gpu")]) < 2:
        assert time.monotonic() < deadline, "the pool did not get back to two workers"
        time.sleep(0.2)

    # A on some worker, then B: on a worker that holds nothing, or in place of A's copy on the other
    a1 = _wait(service.store, submit(tiny_sd_dir, 1))
    b1 = _wait(service.store, submit(other, 2))
    holders = {k: [r["slot"] for r in service.executor.describe() if k in r["held"]]
               for k in (str(tiny_sd_dir.resolve()), str(other.resolve()))}
    assert a1.state is b1.state is JobState.SUCCEEDED
    assert all(len(h) >= 1 for h in holders.values()) and set(holders[str(other.resolve())]) & {b1.result["placement"]["worker"]}
    loads = {r["slot"]: r["base_model_loads"] for r in service.executor.describe()}

    # B queued first, then A: first-come-first-served on the first idle worker would mix them up
    b2, a2 = submit(other, 3), submit(tiny_sd_dir, 4)
    jobs = {"a": _wait(service.store, a2), "b": _wait(service.store, b2)}
    assert all(job.state is JobState.SUCCEEDED for job in jobs.values()), jobs
    for name, model in (("a", tiny_sd_dir), ("b", other)):
        placed = jobs[name].result["placement"]
        assert placed["base_model"] == str(model.resolve()) and placed["warm"] is True
        assert placed["worker"] in holders[str(model.resolve())]  # routed to a worker that held its model
    after = {r["slot"]: r["base_model_loads"] for r in service.executor.describe()}
    assert after == loads  # and nothing was loaded again

    # the REST API shows the cluster's workers, where they run and what they hold
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from facechain.service.app import create_app

    health = TestClient(create_app(service.settings, executor=service.executor)).get("/v1/health").json()
    gpu = [w for w in health["workers"] if w["pool"].startswith("gpu") and w["ready"]]
    assert len(gpu) == 2 and all(w["node_id"] and w["pid"] for w in gpu)
    assert {str(tiny_sd_dir.resolve()), str(other.resolve())} <= {m for w in gpu for m in w["held"]}
