"""The web UI without a browser: its token gate, its job desk and its HTML views, in process."""

from __future__ import annotations

import pytest

from facechain.service.jobs import Job, JobState

pytest.importorskip("gradio")
pytest.importorskip("fastapi")


class _NoExecutor:
    """Jobs stay queued: these tests look at submission and rendering, not at running."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def wake(self) -> None: ...
    def cancel(self, job_id: str) -> None: ...
    def describe(self) -> list:
        return []


def _app(tmp_path, token=None):
    from facechain.service.app import create_app
    from facechain.service.settings import ServiceSettings
    from facechain.ui import mount_ui

    return create_app(ServiceSettings(root=tmp_path / "service", token=token), executor=_NoExecutor(),
                      extensions=[mount_ui])


def test_the_gate_asks_a_browser_for_the_token_and_keeps_it_in_a_cookie(tmp_path):
    from fastapi.testclient import TestClient

    with TestClient(_app(tmp_path, token="s3cret"), follow_redirects=False) as http:
        page = http.get("/ui/", headers={"accept": "text/html"})
        assert page.status_code == 401 and 'name="token"' in page.text  # a login form, not the app
        api_like = http.get("/ui/config")
        assert api_like.status_code == 401 and "token" in api_like.json()["error"]
        assert http.get("/ui/?token=wrong", headers={"accept": "text/html"}).status_code == 401

        hop = http.get("/ui/?token=s3cret&job=job_1")
        assert hop.status_code == 303 and hop.headers["location"] == "/ui/?job=job_1"  # the token leaves the address
        cookie = hop.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui;" in cookie
        assert "s3cret" not in cookie  # an HMAC of it, never the token itself
        assert http.get("/ui/").status_code == 200  # the cookie opens the UI ...
        assert http.get("/v1/jobs").status_code == 401  # ... and nothing else: the API still wants the bearer
        assert http.get("/v1/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 200

    with TestClient(_app(tmp_path / "b", token="s3cret"), follow_redirects=False) as http:
        login = http.post("/ui/login", data={"token": "s3cret"})
        assert login.status_code == 303 and login.headers["location"] == "/ui/"
        assert http.get("/ui/").status_code == 200
        assert TestClient(http.app).get("/ui/", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_without_a_token_the_ui_is_open_on_loopback_and_the_api_unchanged(tmp_path):
    from fastapi.testclient import TestClient

    with TestClient(_app(tmp_path)) as http:
        assert http.get("/ui/").status_code == 200
        assert http.get("/v1/health").json()["auth"] is False


def test_the_desk_submits_through_the_service_and_spells_shared_options_as_the_verb_does(tmp_path, faces_dir):
    from facechain.service.app import Service
    from facechain.service.settings import ServiceSettings
    from facechain.ui.desk import JobDesk, UIError

    service = Service(ServiceSettings(root=tmp_path / "service"), executor=_NoExecutor())
    desk = JobDesk(service)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    up = desk.upload([faces_dir / "obama" / "obama_small.jpg", bad])
    assert len(up.ids) == 1 and up.names == ["obama_small.jpg"]
    assert len(up.refused) == 1 and up.refused[0].startswith("notes.jpg: ")

    generate = desk.accepted_params("generate")
    params = desk.job_params("generate", {"photo": up.ids, "guidance_scale": 5.0, "size": "64", "seed": None,
                                          "prompt": ""})
    spelled = "guidance_scale" if "guidance_scale" in generate else "guidance"
    assert params == {"photo": up.ids, spelled: 5.0, "size": "64"}  # blanks dropped
    train = desk.job_params("train", {"size": 64})
    assert train == {("size" if "size" in desk.accepted_params("train") else "resolution"): 64}

    job = desk.submit("prepare", {"photos": up.ids})
    assert service.store.get(job.id).state is JobState.QUEUED  # the same queue the REST API fills
    assert [j.id for j in desk.jobs()] == [job.id]
    with pytest.raises(UIError, match=r"^param 'name': invalid name"):
        desk.submit("train", {"photos": up.ids, "name": "../x"})
    with pytest.raises(UIError, match="no identity named 'nobody'"):
        desk.submit("generate", {"person": "nobody"})


def test_deleting_a_person_waits_for_the_jobs_that_need_it(tmp_path):
    from facechain.identity import LORA_FILE, Identity
    from facechain.paths import identities_dir
    from facechain.service.app import Service
    from facechain.service.settings import ServiceSettings
    from facechain.ui.desk import JobDesk, UIError

    folder = identities_dir() / "alice"
    folder.mkdir(parents=True)
    (folder / LORA_FILE).write_bytes(b"")
    Identity(name="alice", base_model="x", trigger_word="a man", path=folder).save()
    service = Service(ServiceSettings(root=tmp_path / "service"), executor=_NoExecutor())
    desk = JobDesk(service)
    assert [p.name for p in desk.people()] == ["alice"]
    job = desk.submit("generate", {"person": "alice", "style": "anime"})
    with pytest.raises(UIError, match=f"used by queued job {job.id}"):
        desk.delete_person("alice")
    desk.cancel(job.id)
    desk.delete_person("alice")
    assert not folder.exists() and desk.people() == []
    with pytest.raises(UIError, match="no identity named 'alice'"):
        desk.delete_person("alice")


def test_views_show_progress_errors_and_reports_escaped():
    from facechain.ui import views

    running = Job("job_1", "train", {}, state=JobState.RUNNING, progress=0.42, message="training 4/10 steps")
    html = views.job_status(running, "training")
    assert 'data-state="running"' in html and 'aria-valuenow="42"' in html and "training 4/10 steps" in html
    failed = Job("job_2", "generate", {}, state=JobState.FAILED, error="x.jpg: no face <found>\nat all")
    assert views.error_line("x.jpg: no face <found> at all") in views.job_status(failed)
    assert "<found>" not in views.job_status(failed)

    report = views.prepare_report(
        {"trigger_word": "a mature man", "accepted": [{"file": "images/000_a.png", "source": "a.jpg"}],
         "rejected": [{"source": "<b>.jpg", "reason": "no face found"}]}, lambda f: "", lambda s: "")
    assert "1 accepted, 1 rejected" in report and "rejected: no face found" in report and "&lt;b&gt;.jpg" in report

    cards = views.style_cards([
        {"name": "a", "title": "A", "description": "d", "base_model": None, "style_lora": None, "origin": "builtin"},
        {"name": "b", "title": "B", "description": "", "base_model": "ms:x/y", "base_present": False,
         "style_lora": "ms:x/l", "lora_present": False, "origin": "builtin"},
        {"name": "c", "title": "C", "description": "", "base_model": None, "style_lora": "/l", "lora_present": True,
         "origin": "user"}], selected="b")
    assert "prompt only (no LoRA)" in cards and "LoRA to download" in cards and "LoRA present" in cards
    assert "ms:x/y (to download)" in cards and 'class="fc-style fc-selected" data-style="b"' in cards

    rows = views.job_rows([running, failed])
    assert rows[0][:4] == ["job_1", "train", "running", "42%"] and rows[1][4] == "x.jpg: no face <found> at all"


def test_results_are_ranked_by_similarity_with_their_parameters(tmp_path):
    import json

    from PIL import Image

    from facechain.service.app import Service
    from facechain.service.settings import ServiceSettings
    from facechain.ui import views
    from facechain.ui.desk import JobDesk

    service = Service(ServiceSettings(root=tmp_path / "service"), executor=_NoExecutor())
    out = tmp_path / "out"
    out.mkdir()
    rows = [("0001.png", 0.41, 7), ("0002.png", 0.83, 8), ("0003.png", None, 9)]
    for name, _, _ in rows:
        Image.new("RGB", (8, 8)).save(out / name)
    (out / "portraits.json").write_text(json.dumps(
        {"portraits": [{"file": n, "similarity": s, "seed": seed} for n, s, seed in rows]}))
    job, _ = service.store.create("generate", {"person": "alice"})
    service.store.claim_next("test")
    files = sorted(p.name for p in out.iterdir())
    service.store.finish(job.id, JobState.SUCCEEDED,
                         result={"_folder": str(out), "files": files, "portraits": [n for n, _, _ in rows]})
    ranked = JobDesk(service).ranked_images(service.store.get(job.id))
    assert [(r.rank, r.name, r.similarity, r.params["seed"]) for r in ranked] == [
        (1, "0002.png", 0.83, 8), (2, "0001.png", 0.41, 7), (3, "0003.png", None, 9)]
    html = views.ranked_cards(ranked, lambda p: f"file={p.name}")
    assert html.index("#1</b> · similarity 0.830") < html.index("#2</b> · similarity 0.410")
    assert "similarity n/a (no face found)" in html and 'download="0002.png"' in html and "seed 8" in html
