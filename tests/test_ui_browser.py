"""The web UI in a real browser (headless Chromium + Playwright) against a real ``facechain serve``.

Tiny models (a random SD 1.5-architecture folder) and real photos: upload -> the prepare report
with accepted and rejected photos and reasons -> train (the page reloaded while it runs) -> generate
in a style -> the ranked gallery; a two-face template shows two numbers; a bad upload and a failing
job show their one-line reasons in the page. Screenshots of every tab land in the test's tmp folder
(and in ``$FACECHAIN_UI_SHOTS`` when set, which is how docs/ui/ was made).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.browser import ensure_chromium, launch
from tests.service_helpers import ServerProcess

pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

PHOTOS = ("obama_2012_official_portrait.jpg", "obama_partial_face.jpg")  # one accepted, one rejected
TOKEN = "ui-t0ken"
WAIT_MS = 240_000


@pytest.fixture(scope="module")
def chromium() -> str:
    path, why = ensure_chromium()
    if path is None:
        pytest.skip(f"no Chromium for the browser tests: {why}")
    return path


@pytest.fixture()
def shots(tmp_path) -> "Shots":
    return Shots(tmp_path / "screenshots")


class Shots:
    """Screenshots as test artifacts; copied to ``$FACECHAIN_UI_SHOTS`` too when it is set."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.extra = Path(os.environ["FACECHAIN_UI_SHOTS"]) if os.environ.get("FACECHAIN_UI_SHOTS") else None

    def take(self, page, name: str) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if self.extra is not None:
            self.extra.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.extra / path.name)
        return path


def _fill(page, elem_id: str, value: object) -> None:
    page.locator(f"#{elem_id}").get_by_role("textbox").first.fill(str(value))


def _number(page, elem_id: str, value: int | float) -> None:
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Tab")


def _open(page, accordion_id: str) -> None:
    page.locator(f"#{accordion_id} button").first.click()


class Steps:
    """Prints how long each step took (shown with -rP or when a test fails): where the minutes go."""

    def __init__(self):
        self.t0 = time.monotonic()

    def __call__(self, what: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f} s] {what}", flush=True)


def _ready(page) -> None:
    """The app has loaded and its first load event ran (pickers, styles and remembered jobs are filled in)."""
    page.locator("#fc-ready [data-ready]").wait_for(state="attached")


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def _state(page, status_id: str) -> str | None:
    job = page.locator(f"#{status_id} .fc-job")
    return job.first.get_attribute("data-state") if job.count() else None


def test_train_generate_and_reload_in_a_browser(chromium, faces_dir, tiny_sd_dir, tmp_path, shots):
    step = Steps()
    server = ServerProcess(tmp_path / "home", "--model-root", tiny_sd_dir.parent, token=TOKEN).start()
    step("server up")
    try:
        with sync_api.sync_playwright() as pw:
            browser = launch(pw, chromium)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(WAIT_MS)

            # the token, once in the address, becomes a cookie and leaves the address
            response = page.goto(f"{server.url}/ui/?token={TOKEN}")
            assert response is not None and response.ok
            assert "token=" not in page.url
            _ready(page)
            # without it: a login form, not the app
            other = browser.new_page()
            other.goto(f"{server.url}/ui/")
            assert other.locator("input[name=token]").count() == 1
            other.close()

            # 1. upload real photos -> the report: accepted and rejected, each with its reason
            page.locator("#train-photos input[type=file]").set_input_files([str(faces_dir / "obama" / n) for n in PHOTOS])
            page.locator("#train-photos").get_by_text(PHOTOS[0]).first.wait_for()
            page.locator("#train-check").click()
            page.locator("#train-report .fc-report").wait_for()
            step("prepare report shown")
            accepted = page.locator("#train-report .fc-accepted")
            rejected = page.locator("#train-report .fc-rejected")
            assert accepted.count() == 1 and rejected.count() == 1
            assert "obama_partial_face.jpg" in rejected.inner_text()
            assert re.search(r"rejected: face cut off", rejected.inner_text())
            assert accepted.first.locator("img").get_attribute("src").startswith("data:image/jpeg;base64,")
            assert page.locator("#train-report .fc-trigger").inner_text().startswith("Trigger word: a ")
            shots.take(page, "train-report")

            # 2. train on the tiny base model; reload the page while it runs
            _fill(page, "train-name", "alice")
            _open(page, "train-advanced")
            _fill(page, "tr-steps", 6)
            _fill(page, "tr-size", "64")
            _fill(page, "tr-base-model", str(tiny_sd_dir))
            page.locator("#train-go").click()
            page.wait_for_function(
                "() => ['running'].includes(document.querySelector('#train-status .fc-job')?.dataset.state)")
            job_id = page.locator("#train-status .fc-job").get_attribute("data-job")
            assert f"job={job_id}" in page.url  # the address names the job
            step("training runs")
            shots.take(page, "train-running")
            page.reload()
            _ready(page)
            page.locator(f"#train-status .fc-job[data-job='{job_id}']").wait_for()
            assert _state(page, "train-status") in ("running", "succeeded")
            assert page.locator("#train-report .fc-report").count() == 1  # the report came back too
            page.locator("#train-status .fc-job[data-state='succeeded']").wait_for()
            assert "Person alice is ready" in page.locator("#train-status").inner_text()
            step("trained")

            # 3. portraits: the new person is picked; a style card; tiny sampling settings
            _tab(page, "Portraits")
            assert "alice" in page.locator("#portrait-person input").first.input_value()
            page.locator("#style-cards [data-style='anime']").click()
            page.locator("#style-cards .fc-selected[data-style='anime']").wait_for()
            assert "prompt only" in page.locator("#style-cards [data-style='anime']").inner_text()
            _number(page, "portrait-num", 2)
            _open(page, "portrait-advanced")
            _fill(page, "pt-seed", 7)
            _fill(page, "pt-steps", 2)
            _fill(page, "pt-size", "64")
            _fill(page, "pt-base-model", str(tiny_sd_dir))
            page.locator("#portrait-go").click()
            page.locator("#portrait-status .fc-job[data-state='succeeded']").wait_for()
            cards = page.locator("#portrait-gallery .fc-result")
            cards.first.wait_for()
            assert cards.count() == 2
            assert [c.get_attribute("data-rank") for c in cards.all()] == ["1", "2"]
            captions = cards.all_inner_texts()
            assert all(re.search(r"#\d · similarity (-?[\d.]+|n/a)", c) for c in captions), captions
            scores = [float(x) for x in (c.get_attribute("data-similarity") for c in cards.all()) if x]
            assert scores == sorted(scores, reverse=True)  # random tiny models draw no face: usually n/a
            page.wait_for_function("() => [...document.querySelectorAll('#portrait-gallery img')]"
                                   ".every(i => i.complete && i.naturalWidth === 64)")
            href = cards.first.locator("a[download]").get_attribute("href")
            png = page.request.get(f"{server.url}/ui/{href}", max_redirects=0)  # through the gate, with the cookie
            assert png.ok and png.body()[:8] == b"\x89PNG\r\n\x1a\n" and b"parameters" in png.body()
            assert page.locator("#portrait-files").get_by_text(".png").count() >= 2
            step("portraits shown")
            shots.take(page, "portraits")

            # 4. jobs and people: the history shows every job with its state
            _tab(page, "Jobs and people")
            expect = sync_api.expect
            expect(page.locator("#jobs-table")).to_contain_text("generate")
            table = page.locator("#jobs-table").inner_text()
            assert "prepare" in table and "train" in table and "succeeded" in table
            expect(page.locator("#people-table")).to_contain_text("alice")
            shots.take(page, "jobs-and-people")

            _tab(page, "Train a style")
            shots.take(page, "train-a-style")
            browser.close()
    finally:
        server.stop()


def _two_faces(faces_dir: Path, out: Path) -> Path:
    from PIL import Image

    left = Image.open(faces_dir / "obama" / "obama_2012_official_portrait.jpg").convert("RGB")
    right = Image.open(faces_dir / "biden" / "biden_official_portrait_unverified.jpg").convert("RGB")
    h = 480
    left = left.resize((round(left.width * h / left.height), h))
    right = right.resize((round(right.width * h / right.height), h))
    canvas = Image.new("RGB", (left.width + right.width, h), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    canvas.save(out, quality=92)
    return out


def test_template_faces_and_errors_in_a_browser(chromium, faces_dir, tmp_path, shots):
    step = Steps()
    server = ServerProcess(tmp_path / "home").start()
    step("server up")
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not a photo")
    try:
        with sync_api.sync_playwright() as pw:
            browser = launch(pw, chromium)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{server.url}/ui/")
            _ready(page)

            # a bad upload: its reason, in the page, as the service says it
            page.locator("#train-photos input[type=file]").set_input_files([str(bad)])
            page.locator("#train-photos").get_by_text("notes.jpg").first.wait_for()
            page.locator("#train-check").click()
            error = page.locator("#train-report .fc-error")
            error.wait_for()
            assert re.fullmatch(r"error: notes\.jpg: .+", error.inner_text().strip()), error.inner_text()
            shots.take(page, "bad-upload")

            # a template with two faces: two numbers, two pickers
            _tab(page, "Templates")
            page.locator("#template-file input[type=file]").set_input_files(str(_two_faces(faces_dir, tmp_path / "two.jpg")))
            page.locator("#template-file").get_by_text("two.jpg").first.wait_for()
            page.locator("#template-find").click()
            page.locator("#template-faces .fc-faces").wait_for()
            assert page.locator("#template-faces .fc-faces").get_attribute("data-count") == "2"
            numbers = [t.split(":")[0] for t in page.locator("#template-faces li").all_inner_texts()]
            assert numbers == ["face 0", "face 1"]  # the numbers 'facechain faces' prints and draws
            assert page.locator("#template-face-0").is_visible() and page.locator("#template-face-1").is_visible()
            assert not page.locator("#template-face-2").is_visible()
            page.locator("#template-preview img").first.wait_for()
            step("faces found")
            shots.take(page, "templates")

            # a job that fails shows the same one line as the API (and the CLI): no FACT adapter offline
            page.locator("#template-mode").get_by_text("One photo (train-free)").click()
            page.locator("#template-photo input[type=file]").set_input_files(
                str(faces_dir / "obama" / "obama_2012_official_portrait.jpg"))
            page.locator("#template-photo").get_by_text("obama_2012_official_portrait.jpg").first.wait_for()
            page.locator("#template-go").click()
            page.locator("#template-status .fc-job[data-state='failed']").wait_for()
            job_id = page.locator("#template-status .fc-job").get_attribute("data-job")
            import httpx

            api_error = httpx.get(f"{server.url}/v1/jobs/{job_id}").json()["error"]
            assert page.locator("#template-status .fc-error").inner_text().strip() == f"error: {api_error}"
            browser.close()
    finally:
        server.stop()
