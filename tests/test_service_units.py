"""Job service parts in-process (no server): the SQLite queue, uploads, param validation, the progress sink."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading

import pytest
from facechain import progress
from facechain.service.errors import ServiceError
from facechain.service.executor import InstanceLock
from facechain.service.jobs import JobState
from facechain.service.kinds import ValidationContext, validate
from facechain.service.settings import ServiceSettings
from facechain.service.store import JobStore, UploadRecord, fingerprint
from facechain.service.uploads import UploadStore, safe_filename
from facechain.service.worker import JobSink
from tests.service_helpers import REPO, jpeg_bytes, png_header

pytest.importorskip("fastapi")


@pytest.fixture
def settings(isolated_home, tmp_path):
    return ServiceSettings(max_upload_bytes=200_000, max_upload_pixels=4_000_000, model_roots=[tmp_path / "models"])


@pytest.fixture
def store(settings):
    return JobStore(settings.root)


@pytest.fixture
def uploads(store, settings):
    return UploadStore(store, settings.uploads_dir, max_bytes=settings.max_upload_bytes,
                       max_pixels=settings.max_upload_pixels)


def _status(fn, *args, **kwargs) -> tuple[int, str]:
    with pytest.raises(ServiceError) as info:
        fn(*args, **kwargs)
    assert "\n" not in info.value.message
    return info.value.status, info.value.message


# --- the queue ------------------------------------------------------------------------------------------


def test_claim_runs_each_job_once_and_a_finished_job_is_never_rewritten(store):
    a, _ = store.create("prepare", {"photos": ["x"]})
    b, _ = store.create("train", {"name": "n"})
    assert store.claim_next("srv_1", {"train"}).id == b.id  # kinds filter: a CPU slot never takes train
    assert store.claim_next("srv_2", {"train"}) is None
    claimed = store.claim_next("srv_1")
    assert claimed.id == a.id and claimed.attempts == 1 and claimed.state is JobState.RUNNING
    assert store.finish(a.id, JobState.SUCCEEDED, result={"files": ["r.json"]})
    assert not store.finish(a.id, JobState.FAILED, error="late")  # guarded: the success stays
    assert not store.requeue(a.id, "late")
    done = store.require(a.id)
    assert done.state is JobState.SUCCEEDED and done.error is None and done.files == ["r.json"] and done.progress == 1.0


def test_claims_from_threads_and_processes_never_share_a_job(store, settings):
    ids = {store.create("prepare", {"i": i})[0].id for i in range(30)}
    got: list[str] = []
    lock = threading.Lock()

    def worker(owner):
        s = JobStore(settings.root)  # its own connections, like another server process
        while (job := s.claim_next(owner)) is not None:
            with lock:
                got.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"srv_{i}",)) for i in range(4)]
    child = subprocess.Popen([sys.executable, "-c", "import sys\nfrom facechain.service.store import JobStore\n"
                              "s = JobStore(sys.argv[1])\nwhile (j := s.claim_next('srv_child')) is not None:\n"
                              "    print(j.id)", str(settings.root)], stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
    for t in threads:
        t.start()
    out, _ = child.communicate(timeout=120)
    for t in threads:
        t.join()
    got += out.split()
    assert sorted(got) == sorted(ids)  # every job exactly once


def test_idempotency_key_returns_the_same_job_and_refuses_other_params(store):
    job, created = store.create("train", {"name": "a"}, idempotency_key="k-1")
    again, created2 = store.create("train", {"name": "a"}, idempotency_key="k-1")
    assert created and not created2 and again.id == job.id
    assert store.find_by_key("k-1", fingerprint("train", {"name": "a"})).id == job.id
    status, msg = _status(store.create, "train", {"name": "b"}, idempotency_key="k-1")
    assert status == 422 and "Idempotency-Key" in msg


def test_claimed_names_conflict_only_while_their_job_is_unfinished(store):
    job, _ = store.create("train", {}, claim="identity:alice")
    status, msg = _status(store.create, "train", {}, claim="identity:alice")
    assert status == 409 and job.id in msg
    store.request_cancel(job.id)
    store.create("train", {}, claim="identity:alice")  # the cancelled job no longer holds the name


def test_prerequisites_gate_claims_and_a_failed_prerequisite_fails_its_dependants(store):
    train, _ = store.create("train", {})
    gen, _ = store.create("generate", {}, after=[train.id])
    assert store.claim_next("srv_1").id == train.id
    assert store.claim_next("srv_1") is None  # generate waits
    store.finish(train.id, JobState.FAILED, error="boom")
    assert store.claim_next("srv_1") is None
    failed = store.require(gen.id)
    assert failed.state is JobState.FAILED and train.id in failed.error


def test_cancel_queued_at_once_running_by_flag_and_finished_is_409(store):
    q, _ = store.create("train", {})
    r, _ = store.create("train", {})
    assert store.request_cancel(q.id).state is JobState.CANCELLED
    store.claim_next("srv_1")
    running = store.request_cancel(r.id)
    assert running.state is JobState.RUNNING and running.cancel_requested and store.cancel_requested(r.id)
    assert _status(store.request_cancel, q.id)[0] == 409
    assert _status(store.request_cancel, "job_0000000000000000")[0] == 404
    events = [e.data for e in store.events(q.id)]
    assert events[-1] == {"type": "state", "state": "cancelled", "error": None}


def test_jobs_of_a_dead_server_are_requeued_and_a_live_ones_are_not(store, settings):
    dead = InstanceLock(settings.root / "instances")
    live = InstanceLock(settings.root / "instances")
    j1, _ = store.create("train", {})
    j2, _ = store.create("train", {})
    store.claim_next(dead.id)
    store.claim_next(live.id)
    dead.release()  # what the kernel does when a server is kill -9'd
    assert store.recover(live.alive) == [j1.id]
    assert store.require(j1.id).state is JobState.QUEUED and store.require(j2.id).state is JobState.RUNNING
    again = store.claim_next(live.id)
    assert again.id == j1.id and again.attempts == 2


def test_progress_sink_maps_phases_stores_events_and_raises_cancelled(store):
    job, _ = store.create("train", {})
    job = store.claim_next("srv_1")
    sink = JobSink(store, job, {"training": (0.5, 1.0)})
    with progress.reporting(sink=sink):
        with progress.task("training", total=4, unit="step") as t:
            t.update(2, message="loss 0.1")
    got = store.require(job.id)
    assert got.progress == pytest.approx(1.0) and got.message.startswith("training")
    stored = [e.data for e in store.events(job.id)]
    assert stored[0]["task"] == "training" and stored[-1]["finished"] and stored[-1]["job_progress"] == pytest.approx(1.0)
    store.request_cancel(job.id)
    sink._checked_at = 0.0
    with pytest.raises(progress.Cancelled), progress.reporting(sink=sink):
        progress.task("training", total=4).update(1)


# --- uploads ---------------------------------------------------------------------------------------------


def test_uploads_are_checked_from_the_header_and_stored_by_content(uploads, settings):
    rec = uploads.save(io.BytesIO(jpeg_bytes(80, 60)), "../../etc/pass wd.JPG")
    assert rec.filename == "pass_wd.jpg" and (rec.width, rec.height, rec.format) == (80, 60, "JPEG")
    path = uploads.file(rec)
    assert path.is_file() and settings.uploads_dir in path.parents and path.name.startswith(rec.id)
    assert uploads.save(io.BytesIO(jpeg_bytes(80, 60)), "other.jpg").id == rec.id  # same bytes, one file
    cases = {
        "bomb.png": (png_header(50000, 50000), 413, "too large"),
        "big.png": (png_header(3000, 3000), 413, "3000x3000"),
        "note.txt": (b"just text", 415, "not an image"),
        "cut.jpg": (jpeg_bytes(200, 200)[:600], 422, "truncated"),
        "empty.jpg": (b"", 422, "empty"),
        "huge.jpg": (b"\xff" * 300_000, 413, "file too large"),
    }
    for name, (data, status, words) in cases.items():
        code, msg = _status(uploads.save, io.BytesIO(data), name)
        assert (code, words in msg, msg.startswith(name)) == (status, True, True), (name, code, msg)
    leftovers = [p for p in settings.uploads_dir.rglob("*") if p.is_file()]
    assert leftovers == [path]  # refused files leave nothing behind


def test_safe_filename_never_leaves_the_folder():
    for bad in ("../../x.png", "..", "/abs/y.png", "a\\..\\b.png", ".hidden.png", "", "é ü.png"):
        name = safe_filename(bad, "upload", ".png")
        assert "/" not in name and "\\" not in name and not name.startswith(".") and name.endswith(".png")


def test_materialized_inputs_keep_names_and_stay_in_the_job_folder(uploads, tmp_path):
    a = uploads.save(io.BytesIO(jpeg_bytes(40, 40, 1)), "me.jpg")
    b = uploads.save(io.BytesIO(jpeg_bytes(40, 40, 2)), "me.jpg")
    files = uploads.materialize([a.id, b.id], tmp_path / "in")
    assert [f.name for f in files] == ["me.jpg", "me-2.jpg"] and all(f.parent == tmp_path / "in" for f in files)


# --- params ----------------------------------------------------------------------------------------------


def test_params_are_validated_against_the_verbs_signatures(store, uploads, settings, tmp_path, isolated_home):
    ctx = ValidationContext(store, uploads, settings)
    up = uploads.save(io.BytesIO(jpeg_bytes(64, 64)), "p.jpg").id
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    kind, sub = validate("train", {"photos": [up], "name": "alice", "steps": "30", "retouch": False,
                                   "base_model": str(tmp_path / "models" / "tiny")}, ctx)
    assert kind.device == "gpu" and sub.params["steps"] == 30 and sub.claim == "identity:alice"
    assert validate("prepare", {"photos": up}, ctx)[0].device == "cpu"
    bad = [
        ("nope", {}, 422, "unknown job kind"),
        ("train", {"photos": [up], "name": "a", "stepz": 3}, 422, "unknown param 'stepz'"),
        ("train", {"photos": [up], "name": "a", "output": "/tmp/x"}, 422, "unknown param 'output'"),
        ("train", {"photos": [up], "name": "a", "config_file": "/etc/passwd"}, 422, "unknown param 'config_file'"),
        ("train", {"photos": [up], "name": "a", "steps": "many"}, 422, "expected an integer"),
        ("train", {"photos": [up], "name": "a", "steps": 0}, 422, "at least 1"),
        ("train", {"photos": [up], "name": "../evil"}, 422, "invalid name"),
        ("train", {"photos": ["0" * 64], "name": "a"}, 422, "no upload"),
        ("train", {"photos": ["/etc/passwd"], "name": "a"}, 422, "expected upload ids"),
        ("train", {"photos": [up]}, 422, "'name' is required"),
        ("train", {"photos": [up], "name": "a", "base_model": "/etc"}, 422, "--model-root"),
        ("train", {"photos": [up], "name": "a", "base_model": "ms:org/m#../../x"}, 422, "invalid model reference"),
        ("generate", {"person": "nobody"}, 422, "no identity named 'nobody'"),
        ("generate", {"person": "../../etc"}, 422, "invalid name"),
        ("generate", {"photo": [up], "style": "../styles/x.yaml"}, 422, "invalid name"),
        ("generate", {"photo": [up], "style": "no_such_style"}, 422, "no style named"),
        ("generate", {"photo": [up], "face_lora": "/x"}, 422, "unknown param 'face_lora'"),
        ("generate", {}, 422, "give 'person'"),
        ("inpaint", {"template": up}, 422, "give 'person'"),
        ("train", [1, 2], 422, "JSON object"),
    ]
    for kind_name, params, status, words in bad:
        code, msg = _status(validate, kind_name, params, ctx)
        assert code == status and words in msg, (kind_name, params, code, msg)


def test_a_job_for_an_identity_being_trained_waits_for_that_training(store, uploads, settings):
    ctx = ValidationContext(store, uploads, settings)
    up = uploads.save(io.BytesIO(jpeg_bytes(64, 64)), "p.jpg").id
    _, sub = validate("train", {"photos": [up], "name": "carol"}, ctx)
    train, _ = store.create("train", sub.params, claim=sub.claim)
    _, gen = validate("generate", {"person": "carol", "style": "cyberpunk"}, ctx)
    assert gen.after == [train.id] and isinstance(gen.params["seed"], int)  # seed fixed for reproducible re-runs


def test_upload_record_round_trip(store):
    rec = UploadRecord("a" * 64, "x.png", "PNG", 3, 4, 5, 1.0)
    store.add_upload(rec)
    assert store.get_upload("a" * 64) == rec and json.loads(json.dumps(rec.to_json()))["height"] == 4


def test_serve_refuses_a_public_address_without_a_token(monkeypatch):
    from tests.cli_helpers import run_cli

    monkeypatch.delenv("FACECHAIN_API_TOKEN", raising=False)
    code, _, err = run_cli("serve", "--host", "0.0.0.0", "--port", "1")
    assert code == 2 and err.count("\n") == 1 and "refusing to listen on 0.0.0.0 without a token" in err
    assert run_cli("serve", "--workers", "0")[0] == 2
