"""The service end to end on tiny models over real HTTP: the Python client's journey, and a kill -9 mid-training."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from facechain import progress
from tests.service_helpers import ServerProcess, pid_alive, wait_for, wait_job

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

PHOTOS = ("obama_2012_official_portrait.jpg", "obama_2010_blue_room_crop.jpg")
STEPS, EVERY = 40, 4  # long enough to be killed between the first checkpoint and the end


def _train_params(tiny_sd_dir) -> dict:
    return {"base_model": str(tiny_sd_dir), "resolution": 64, "steps": STEPS, "checkpoint_every": EVERY,
            "retouch": False, "seed": 5}


def test_client_uploads_trains_generates_and_downloads_a_png_with_its_parameters(faces_dir, tiny_sd_dir, tmp_path):
    import facechain
    from facechain.generation.results import PortraitSet

    server = ServerProcess(tmp_path / "home", "--model-root", tiny_sd_dir.parent, token="t0k").start()
    try:
        photos = [faces_dir / "obama" / name for name in PHOTOS]
        with facechain.Client(server.url, token="t0k") as client:
            seen = progress.RecordingSink()
            with progress.reporting(sink=seen):  # the job's server-sent events arrive as progress events here
                ident = client.train(photos, name="alice", output=tmp_path / "alice", **_train_params(tiny_sd_dir))
            assert ident.name == "alice" and ident.lora_path.is_file() and ident.trigger_word
            assert {"prepare", "training"} <= set(seen.tasks())
            steps = [e.done for e in seen.events if e.task == "training"]
            assert steps == sorted(steps) and steps[-1] == STEPS
            assert [i["name"] for i in client.identities()] == ["alice"]

            results = client.generate("alice", style_prompt="{trigger}, studio portrait", size="64", steps=2,
                                      num_images=2, seed=7, output=tmp_path / "portraits", quiet=True)
            job = client.jobs(kind="generate")[0]
        assert isinstance(results, PortraitSet) and len(results) == 2 and results.settings["seeds"] == [7, 8]
        first = results[0].path
        with Image.open(first) as png:
            text = dict(png.text)
            assert png.size == (64, 64)
        assert "Seed: " in text["parameters"] and "Steps: 2" in text["parameters"]
        meta = json.loads(text["facechain"])
        assert meta["identity"] == "alice" and meta["seed"] in (7, 8) and meta["prompt"].startswith(ident.trigger_word)
        served = httpx.get(f"{server.url}/v1/jobs/{job.id}/files/{first.name}", headers=server.headers)
        on_server = tmp_path / "home" / "service" / "jobs" / job.id / "output" / first.name
        assert served.content == first.read_bytes() == on_server.read_bytes()  # byte for byte: metadata intact
    finally:
        server.stop()


def _lora(path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_kill_9_mid_training_then_restart_finishes_from_the_checkpoint(faces_dir, tiny_sd_dir, tmp_path):
    home = tmp_path / "home"
    server = ServerProcess(home, "--model-root", tiny_sd_dir.parent).start()
    http = httpx.Client(base_url=server.url, timeout=60)
    try:
        files = [("files", (n, (faces_dir / "obama" / n).read_bytes())) for n in PHOTOS]
        ids = [u["id"] for u in http.post("/v1/uploads", files=files).json()["uploads"]]
        params = {"photos": ids, **_train_params(tiny_sd_dir)}
        # an uninterrupted run first: the reference, and a finished job that the restart must leave alone
        ref = http.post("/v1/jobs", json={"kind": "train", "params": {**params, "name": "ref"}}).json()
        ref = wait_job(http, ref["id"], timeout=600)
        assert ref["state"] == "succeeded", ref
        ref_lora = home / "identities" / "ref" / "pytorch_lora_weights.safetensors"
        ref_bytes = ref_lora.read_bytes()

        job = http.post("/v1/jobs", json={"kind": "train", "params": {**params, "name": "bob"}},
                        headers={"Idempotency-Key": "bob-1"}).json()
        work = home / "identities" / "bob.work"
        wait_for(lambda: any(work.glob("checkpoint-*/state.json")), 600, 0.01, "bob's first checkpoint")
        worker = next(w["pid"] for w in http.get("/v1/health").json()["workers"] if w["job"] == job["id"])
        server.kill9()
        wait_for(lambda: not pid_alive(worker), 10, 0.05, "the worker to die with the server")
        assert not (home / "identities" / "bob").exists(), "training finished before the kill: raise STEPS"
        reached = max(int(p.name.split("-")[1]) for p in work.glob("checkpoint-*"))
        assert EVERY <= reached < STEPS

        server.start()
        # a client retrying its submission after the outage gets the same job back
        again = http.post(f"{server.url}/v1/jobs", json={"kind": "train", "params": {**params, "name": "bob"}},
                          headers={"Idempotency-Key": "bob-1"}).json()
        assert again["id"] == job["id"]
        done = wait_job(http, job["id"], timeout=600)
        assert done["state"] == "succeeded" and done["attempts"] == 2, done
        assert done["result"]["resumed_from_step"] >= reached  # continued, not started over
        manifest = json.loads((home / "identities" / "bob" / "facechain.json").read_text())
        assert manifest["training"]["steps"] == STEPS and not work.exists()

        bob, ref_w = _lora(home / "identities" / "bob" / "pytorch_lora_weights.safetensors"), _lora(ref_lora)
        assert bob.keys() == ref_w.keys()
        diff = max(float((bob[k] - ref_w[k]).abs().max()) for k in bob)
        assert diff <= 1e-6, diff
        assert all(float(t.abs().max()) > 0 for t in bob.values())  # trained (LoRA B starts at zero)
        untouched = http.get(f"/v1/jobs/{ref['id']}").json()
        assert untouched["attempts"] == 1 and untouched["finished"] == ref["finished"] and ref_lora.read_bytes() == ref_bytes
    finally:
        http.close()
        server.stop()
