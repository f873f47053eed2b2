"""The REST API over real HTTP on loopback: bad requests, idempotency, cancellation (a server per test)."""

from __future__ import annotations

import json
import os

import pytest

from tests.service_helpers import ServerProcess, jpeg_bytes, png_header, wait_for, wait_job

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

TOKEN = "s3cret-token"


@pytest.fixture
def server(tmp_path, tiny_sd_dir):
    srv = ServerProcess(tmp_path / "home", "--model-root", tiny_sd_dir.parent, "--max-upload-files", 4,
                        "--max-upload-bytes", 1_500_000, "--max-upload-pixels", 20_000_000, token=TOKEN).start()
    yield srv
    srv.stop()


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as client:
        yield client


def _files(*items: tuple[str, bytes]):
    return [("files", (name, data)) for name, data in items]


def _upload(http, *paths) -> list[str]:
    r = http.post("/v1/uploads", files=_files(*((p.name, p.read_bytes()) for p in paths)))
    assert r.status_code == 201, r.text
    return [u["id"] for u in r.json()["uploads"]]


def _snapshot(root) -> set[str]:
    return {str(p) for p in root.rglob("*") if p.is_file()}


def test_bad_requests_get_their_4xx_and_one_line_and_the_server_keeps_serving(server, http, faces_dir, tiny_sd_dir,
                                                                              tmp_path):
    before = _snapshot(tmp_path)
    photo = faces_dir / "obama" / "obama_2012_official_portrait.jpg"
    up = _upload(http, photo)[0]
    # a finished job to poke at: prepare one face photo and one photo without a face (rejected with a reason)
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(jpeg_bytes(200, 200, 3))
    noface = _upload(http, plain)[0]
    prep = http.post("/v1/jobs", json={"kind": "prepare", "params": {"photos": [up, noface], "retouch": False}}).json()
    running = http.post("/v1/jobs", json={"kind": "train", "params": {
        "photos": [up], "name": "dora", "base_model": str(tiny_sd_dir), "size": 64, "steps": 5000}}).json()

    base = {"photos": [up], "name": "x", "base_model": str(tiny_sd_dir)}
    nobody = {"Authorization": ""}
    cases = [
        # (what, method, path, kwargs, status, words in the error)
        ("no token", "GET", "/v1/health", {"headers": nobody}, 401, "missing bearer token"),
        ("wrong token", "GET", "/v1/jobs", {"headers": {"Authorization": "Bearer nope"}}, 401, "invalid token"),
        ("basic auth", "GET", "/v1/jobs", {"headers": {"Authorization": f"Basic {TOKEN}"}}, 401, "token"),
        ("no token on docs", "GET", "/docs", {"headers": nobody}, 401, "token"),
        ("non-image", "POST", "/v1/uploads", {"files": _files(("notes.txt", b"hello"))}, 415, "not an image"),
        ("truncated image", "POST", "/v1/uploads", {"files": _files(("cut.jpg", jpeg_bytes(300, 300)[:900]))}, 422,
         "truncated"),
        ("50000x50000 PNG header", "POST", "/v1/uploads", {"files": _files(("bomb.png", png_header(50000, 50000)))},
         413, "image too large"),
        ("too many pixels", "POST", "/v1/uploads", {"files": _files(("wide.png", png_header(6000, 4000)))}, 413,
         "6000x4000"),
        ("too many files", "POST", "/v1/uploads", {"files": _files(*[(f"{i}.jpg", jpeg_bytes(40, 40, i))
                                                                    for i in range(5)])}, 413, "too many files"),
        ("file too large", "POST", "/v1/uploads", {"files": _files(("big.jpg", os.urandom(1_600_000)))}, 413,
         "too large"),
        ("no files", "POST", "/v1/uploads", {"data": {"x": "1"}}, 400, "no files"),
        ("upload body over the limit", "POST", "/v1/uploads", {"content": b"x" * 8_000_000,
                                                               "headers": {"Content-Type": "multipart/form-data; boundary=b"}},
         413, "too large"),
        ("invalid JSON", "POST", "/v1/jobs", {"content": b"{kind: train", "headers": {"Content-Type": "application/json"}},
         400, "invalid JSON"),
        ("JSON body too large", "POST", "/v1/jobs", {"json": {"kind": "train", "params": {"x": "y" * 1_100_000}}}, 413,
         "too large"),
        ("unknown kind", "POST", "/v1/jobs", {"json": {"kind": "mine_bitcoin", "params": {}}}, 422, "unknown job kind"),
        ("params not an object", "POST", "/v1/jobs", {"json": {"kind": "train", "params": [1]}}, 422, "params"),
        ("unknown param", "POST", "/v1/jobs", {"json": {"kind": "train", "params": {**base, "turbo": True}}}, 422,
         "unknown param 'turbo'"),
        ("wrong type: steps", "POST", "/v1/jobs", {"json": {"kind": "train", "params": {**base, "steps": "lots"}}}, 422,
         "expected an integer"),
        ("wrong type: retouch", "POST", "/v1/jobs", {"json": {"kind": "train", "params": {**base, "retouch": [1]}}}, 422,
         "true/false"),
        ("out of range", "POST", "/v1/jobs", {"json": {"kind": "train", "params": {**base, "size": 60}}}, 422,
         "size must be multiples of 8"),
        ("../ identity name", "POST", "/v1/jobs", {"json": {"kind": "train", "params": {**base, "name": "../../evil"}}},
         422, "invalid name"),
        ("../ person", "POST", "/v1/jobs", {"json": {"kind": "generate", "params": {"person": "../identities/x"}}}, 422,
         "invalid name"),
        ("style file path", "POST", "/v1/jobs", {"json": {"kind": "generate", "params": {"photo": [up],
                                                                                         "style": "/etc/evil.yaml"}}},
         422, "invalid name"),
        ("unknown style", "POST", "/v1/jobs", {"json": {"kind": "generate", "params": {"photo": [up], "style": "nope"}}},
         422, "no style named 'nope'"),
        ("unknown identity", "POST", "/v1/jobs", {"json": {"kind": "generate", "params": {"person": "nobody"}}}, 422,
         "no identity named 'nobody'"),
        ("unknown upload", "POST", "/v1/jobs", {"json": {"kind": "train", "params": {**base, "photos": ["f" * 64]}}},
         422, "no upload"),
        ("server path as photo", "POST", "/v1/jobs", {"json": {"kind": "prepare", "params": {"photos": ["/etc/hosts"]}}},
         422, "upload ids"),
        ("model outside the roots", "POST", "/v1/jobs", {"json": {"kind": "train", "params": {**base,
                                                                                              "base_model": "/usr"}}},
         422, "--model-root"),
        ("output is the service's", "POST", "/v1/jobs", {"json": {"kind": "prepare", "params": {"photos": [up],
                                                                                               "output": "/tmp/x"}}},
         422, "unknown param 'output'"),
        ("name taken by a running job", "POST", "/v1/jobs", {"json": {"kind": "train", "params": {**base,
                                                                                                  "name": "dora"}}},
         409, "already being made"),
        ("bad job state filter", "GET", "/v1/jobs?state=sleeping", {}, 422, "state"),
        ("unknown job", "GET", "/v1/jobs/job_0123456789abcdef", {}, 404, "no job"),
        ("cancel unknown job", "DELETE", "/v1/jobs/nope", {}, 404, "no job"),
        ("events of unknown job", "GET", "/v1/jobs/nope/events", {}, 404, "no job"),
        ("files of an unknown job", "GET", "/v1/jobs/nope/files/0001.png", {}, 404, "no job"),
        ("files of an unfinished job", "GET", f"/v1/jobs/{running['id']}/files/facechain.json", {}, 409,
         "ready once it succeeded"),
        ("unknown route", "GET", "/v1/nothing-here", {}, 404, "Not Found"),
    ]
    for what, method, path, kwargs, status, words in cases:
        r = http.request(method, path, **kwargs)
        assert r.status_code == status, (what, r.status_code, r.text[:300])
        error = r.json()["error"]
        assert words in error and "\n" not in error and "Traceback" not in error and len(error) < 500, (what, error)

    assert http.delete(f"/v1/jobs/{running['id']}").status_code == 202
    done = wait_job(http, prep["id"], timeout=300)
    assert done["state"] == "succeeded", done
    assert done["result"]["rejected"] == [{"source": "plain.jpg", "reason": done["result"]["rejected"][0]["reason"]}]
    assert "_folder" not in done["result"] and "report.json" in done["files"]
    after_done = [
        ("../ file name", "GET", f"/v1/jobs/{prep['id']}/files/../../jobs.sqlite3", 404),
        ("encoded ../ file name", "GET", f"/v1/jobs/{prep['id']}/files/..%2F..%2Fjobs.sqlite3", 404),
        ("unlisted file", "GET", f"/v1/jobs/{prep['id']}/files/log.txt", 404),
        ("cancel a finished job", "DELETE", f"/v1/jobs/{prep['id']}", 409),
    ]
    for what, method, path, status in after_done:
        r = http.request(method, path)
        assert r.status_code == status and "\n" not in r.json()["error"], (what, r.status_code, r.text[:300])
    report = http.get(f"/v1/jobs/{prep['id']}/files/report.json")
    assert report.status_code == 200 and json.loads(report.content)["trigger_word"] == done["result"]["trigger_word"]

    assert wait_job(http, running["id"], timeout=300)["state"] == "cancelled"
    health = http.get("/v1/health")
    assert health.status_code == 200 and health.json()["jobs"]["succeeded"] == 1  # still serving
    created = _snapshot(tmp_path) - before
    home_service = str(tmp_path / "home" / "service")
    allowed_elsewhere = {str(plain), str(server.log)}
    stray = sorted(p for p in created if not p.startswith(home_service + os.sep) and p not in allowed_elsewhere)
    assert stray == [], stray  # nothing outside the service's folder (no identity either: dora was cancelled)
    assert not any("evil" in p for p in _snapshot(tmp_path))  # no '../' name escaped, here or one level up
    assert not any(q.name.startswith("evil") for q in tmp_path.parent.iterdir())


def test_idempotent_resubmission_and_cancel_of_a_queued_and_a_running_job(server, http, faces_dir, tiny_sd_dir):
    up = _upload(http, faces_dir / "obama" / "obama_2012_official_portrait.jpg")
    train = {"kind": "train", "params": {"photos": up, "name": "carol", "base_model": str(tiny_sd_dir),
                                         "size": 64, "steps": 5000, "retouch": False}}
    first = http.post("/v1/jobs", json=train, headers={"Idempotency-Key": "train-carol-1"})
    again = http.post("/v1/jobs", json=train, headers={"Idempotency-Key": "train-carol-1"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    other = http.post("/v1/jobs", json={**train, "params": {**train["params"], "steps": 7}},
                      headers={"Idempotency-Key": "train-carol-1"})
    assert other.status_code == 422 and "different request" in other.json()["error"]
    assert len(http.get("/v1/jobs", params={"kind": "train"}).json()["jobs"]) == 1
    job_id = first.json()["id"]

    # a generate for carol waits for her training: it stays queued, and cancelling it is immediate
    gen = http.post("/v1/jobs", json={"kind": "generate", "params": {"person": "carol", "size": "64", "steps": 2}}).json()
    assert gen["after"] == [job_id] and gen["state"] == "queued"
    cancelled = http.delete(f"/v1/jobs/{gen['id']}")
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"

    # the job runs in a worker process; cancelling stops it at its next progress step (a photo or a training step)
    wait_for(lambda: http.get(f"/v1/jobs/{job_id}").json()["message"] != "", 300, 0.05,
             "the job's first progress step")
    worker_pid = next(w["pid"] for w in http.get("/v1/health").json()["workers"] if w["job"] == job_id)
    stop = http.delete(f"/v1/jobs/{job_id}")
    assert stop.status_code == 202 and stop.json()["cancel_requested"]
    ended = wait_job(http, job_id, timeout=120)
    assert ended["state"] == "cancelled" and ended["attempts"] == 1
    workers = http.get("/v1/health").json()["workers"]
    assert worker_pid in [w["pid"] for w in workers]  # stopped by its progress sink, not by killing the worker
    assert http.get("/v1/identities").json()["identities"] == []
    events = http.get(f"/v1/jobs/{job_id}/events")  # a finished job's stream replays its events and ends
    assert events.status_code == 200 and "event: end" in events.text and '"state": "cancelled"' in events.text
    assert http.post("/v1/jobs", json=train, headers={"Idempotency-Key": "train-carol-1"}).json()["state"] == "cancelled"
