"""The Gradio app: five tabs over the job service (train a person, portraits, templates, train a style, jobs).

How state survives: each tab's current job id lives in the browser's storage (``gr.BrowserState``,
key ``facechain-ui``, sealed with a secret kept in the service folder so a server restart can
still read it) and in the page's address (``?job=<id>``); what a job is and what it made always
comes from the service's job store. A timer re-reads the jobs every second and re-renders a tab
only when its job changed. So a reload, a closed tab or a server restart loses nothing: the page
comes back showing the same jobs, still running or finished.

Every button either uploads files into the service's upload store or submits a job through
:class:`~facechain.ui.desk.JobDesk` (the REST API's ``submit_job``); errors show as the one line the
CLI prints. The one exception is the template's numbered face preview, which calls the library's
``template_faces`` in the server (a second of face detection; there is no job kind for it yet).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gradio as gr

from ..errors import FacechainError
from ..service.jobs import Job, JobState
from . import views
from .desk import JobDesk, UIError

log = logging.getLogger(__name__)

MAX_TEMPLATE_FACES = 6
POLL_S = 1.0
SLOTS = {"prepare": "prepare", "train": "train", "generate": "generate", "inpaint": "inpaint", "train_style": "style"}
PHOTO_MODE, PERSON_MODE = "One photo (train-free)", "A trained person"

# what the page's address does with a new job id: ?job=<id> (a reload or a shared link opens it again)
_URL_JS = "(id) => { if (id) { const u = new URL(window.location); u.searchParams.set('job', id); " \
          "window.history.replaceState(null, '', u); } return id; }"
_CARD_JS = "element.addEventListener('click', (e) => { const c = e.target.closest('[data-style]'); " \
           "if (c) trigger('click', {style: c.dataset.style}); });"


@dataclass
class Widgets:
    """Every component a handler reads or writes (built once per app, shared by all handlers)."""

    slots: Any = None
    seen: Any = None
    last_job: Any = None
    ready: Any = None
    tabs: Any = None
    # train a person
    tr_files: Any = None
    tr_name: Any = None
    tr_trigger: Any = None
    tr_steps: Any = None
    tr_size: Any = None
    tr_base: Any = None
    tr_seed: Any = None
    tr_check: Any = None
    tr_train: Any = None
    tr_report: Any = None
    tr_status: Any = None
    # portraits
    pt_mode: Any = None
    pt_person: Any = None
    pt_photo: Any = None
    pt_style: Any = None
    pt_cards: Any = None
    pt_prompt: Any = None
    pt_pose: Any = None
    pt_num: Any = None
    pt_seed: Any = None
    pt_steps: Any = None
    pt_guidance: Any = None
    pt_face_w: Any = None
    pt_style_w: Any = None
    pt_base: Any = None
    pt_size: Any = None
    pt_go: Any = None
    pt_status: Any = None
    pt_gallery: Any = None
    pt_files: Any = None
    pt_params: Any = None
    # templates
    tp_file: Any = None
    tp_find: Any = None
    tp_preview: Any = None
    tp_faces: Any = None
    tp_upload: Any = None
    tp_mode: Any = None
    tp_pick: Any = None
    tp_photo: Any = None
    tp_photo_face: Any = None
    tp_steps: Any = None
    tp_size: Any = None
    tp_base: Any = None
    tp_seed: Any = None
    tp_num: Any = None
    tp_go: Any = None
    tp_status: Any = None
    tp_gallery: Any = None
    tp_files: Any = None
    # train a style
    st_files: Any = None
    st_name: Any = None
    st_caption: Any = None
    st_steps: Any = None
    st_size: Any = None
    st_base: Any = None
    st_go: Any = None
    st_status: Any = None
    # jobs and people
    jb_table: Any = None
    jb_refresh: Any = None
    jb_id: Any = None
    jb_open: Any = None
    jb_cancel: Any = None
    jb_note: Any = None
    pp_table: Any = None
    pp_pick: Any = None
    pp_delete: Any = None
    pp_note: Any = None


def build_ui(desk: JobDesk, secret: str, workdir: Path) -> gr.Blocks:
    """The Blocks app; ``secret`` seals the browser storage, ``workdir`` holds face previews."""
    w = Widgets()
    with gr.Blocks(title="facechain") as demo:
        w.slots = gr.BrowserState({}, storage_key="facechain-ui", secret=secret)
        w.seen = gr.State({})
        w.last_job = gr.Textbox(visible=False, elem_id="fc-last-job")
        w.ready = gr.HTML(elem_id="fc-ready")  # the first load event ran (tests and scripts wait for it)
        gr.Markdown("# facechain\nPortraits that look like you: train a person, pick a style, or put faces "
                    "into a template. Every action is a job of this server (see *Jobs and people*).")
        with gr.Tabs() as w.tabs:
            with gr.Tab("Train a person", id="train", elem_id="tab-train"):
                _train_tab(w)
            with gr.Tab("Portraits", id="portraits", elem_id="tab-portraits"):
                _portraits_tab(w)
            with gr.Tab("Templates", id="templates", elem_id="tab-templates"):
                _templates_tab(w)
            with gr.Tab("Train a style", id="style", elem_id="tab-style"):
                _style_tab(w)
            with gr.Tab("Jobs and people", id="jobs", elem_id="tab-jobs"):
                _jobs_tab(w)
        timer = gr.Timer(POLL_S)
        Handlers(desk, w, workdir).bind(demo, timer)
    return demo


# --- layout ------------------------------------------------------------------------------------------


def _optional(label: str, elem_id: str) -> gr.Textbox:
    """A number the user may leave empty: empty means the verb's (or the style's) own default."""
    return gr.Textbox(label=label, placeholder="default", elem_id=elem_id)


def _advanced(w: Widgets, prefix: str, size_label: str) -> None:
    setattr(w, f"{prefix}_steps", _optional("steps", f"{prefix}-steps"))
    setattr(w, f"{prefix}_size", gr.Textbox(label=size_label, placeholder="default", elem_id=f"{prefix}-size"))
    setattr(w, f"{prefix}_base", gr.Textbox(label="base model", placeholder="default (the style's or the person's)",
                                            elem_id=f"{prefix}-base-model"))


def _train_tab(w: Widgets) -> None:
    gr.Markdown("Upload 3-10 photos of one person. **Check photos** shows which ones training will use and why "
                "others are left out; **Train** makes a face LoRA under the name you give.")
    with gr.Row():
        with gr.Column(scale=2):
            w.tr_files = gr.File(label="photos", file_count="multiple", file_types=["image"], elem_id="train-photos")
            w.tr_name = gr.Textbox(label="name", placeholder="e.g. alice (letters, digits, . _ -)", elem_id="train-name")
            w.tr_trigger = gr.Textbox(label="trigger word (optional)", placeholder="from gender and age",
                                      elem_id="train-trigger")
            with gr.Accordion("advanced", open=False, elem_id="train-advanced"):
                _advanced(w, "tr", "size (training resolution, px)")
                w.tr_seed = _optional("seed", "tr-seed")
            with gr.Row():
                w.tr_check = gr.Button("Check photos", elem_id="train-check")
                w.tr_train = gr.Button("Train", variant="primary", elem_id="train-go")
        with gr.Column(scale=3):
            w.tr_report = gr.HTML(elem_id="train-report")
            w.tr_status = gr.HTML(elem_id="train-status")


def _portraits_tab(w: Widgets) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            w.pt_mode = gr.Radio([PERSON_MODE, PHOTO_MODE], value=PERSON_MODE, label="who", elem_id="portrait-mode")
            w.pt_person = gr.Dropdown(label="person", choices=[], elem_id="portrait-person")
            w.pt_photo = gr.File(label="one photo (train-free FACT)", file_types=["image"], visible=False,
                                 elem_id="portrait-photo")
            w.pt_style = gr.Dropdown(label="style", choices=[], elem_id="portrait-style")
            w.pt_prompt = gr.Textbox(label="prompt (optional, replaces the style's; {trigger} = the person)",
                                     elem_id="portrait-prompt")
            w.pt_pose = gr.File(label="pose image (optional)", file_types=["image"], elem_id="portrait-pose")
            w.pt_num = gr.Slider(1, 8, value=4, step=1, label="number of images", elem_id="portrait-num")
            with gr.Accordion("advanced", open=False, elem_id="portrait-advanced"):
                w.pt_seed = _optional("seed", "pt-seed")
                _advanced(w, "pt", "size (N or WxH)")
                w.pt_guidance = _optional("guidance scale", "pt-guidance-scale")
                w.pt_face_w = _optional("face weight (0-2)", "pt-face-weight")
                w.pt_style_w = _optional("style weight (0-2)", "pt-style-weight")
            w.pt_go = gr.Button("Generate", variant="primary", elem_id="portrait-go")
        with gr.Column(scale=3):
            w.pt_cards = gr.HTML(elem_id="style-cards", js_on_load=_CARD_JS)
    w.pt_status = gr.HTML(elem_id="portrait-status")
    w.pt_gallery = gr.HTML(elem_id="portrait-gallery")  # ranked cards: image, rank, similarity, seed, PNG link
    w.pt_files = gr.File(label="PNGs (with their parameters)", file_count="multiple", interactive=False,
                         elem_id="portrait-files")
    w.pt_params = gr.JSON(label="parameters", elem_id="portrait-params")


def _templates_tab(w: Widgets) -> None:
    gr.Markdown("Upload a photo with people in it, **Find faces** numbers them left to right; choose who goes "
                "into each face.")
    with gr.Row():
        with gr.Column(scale=2):
            w.tp_file = gr.File(label="template photo", file_types=["image"], elem_id="template-file")
            w.tp_find = gr.Button("Find faces", elem_id="template-find")
            w.tp_faces = gr.HTML(elem_id="template-faces")
            w.tp_upload = gr.State("")
            w.tp_mode = gr.Radio([PERSON_MODE, PHOTO_MODE], value=PERSON_MODE, label="who", elem_id="template-mode")
            w.tp_pick = [gr.Dropdown(label=f"face {i}", choices=[], visible=False, elem_id=f"template-face-{i}")
                         for i in range(MAX_TEMPLATE_FACES)]  # the library's face numbers (as 'facechain faces')
            w.tp_photo = gr.File(label="one photo (train-free)", file_types=["image"], visible=False,
                                 elem_id="template-photo")
            w.tp_photo_face = gr.Dropdown(label="into face", choices=[], visible=False, elem_id="template-photo-face")
            w.tp_num = gr.Slider(1, 4, value=1, step=1, label="number of images", elem_id="template-num")
            with gr.Accordion("advanced", open=False, elem_id="template-advanced"):
                w.tp_seed = _optional("seed", "tp-seed")
                _advanced(w, "tp", "size (px)")
            w.tp_go = gr.Button("Put the faces in", variant="primary", elem_id="template-go")
        with gr.Column(scale=3):
            w.tp_preview = gr.Image(label="numbered faces", interactive=False, elem_id="template-preview")
    w.tp_status = gr.HTML(elem_id="template-status")
    w.tp_gallery = gr.HTML(elem_id="template-gallery")
    w.tp_files = gr.File(label="PNGs", file_count="multiple", interactive=False, elem_id="template-files")


def _style_tab(w: Widgets) -> None:
    gr.Markdown("Upload 10+ images of one look; a style LoRA is trained and appears in the Portraits style gallery.")
    w.st_files = gr.File(label="style images", file_count="multiple", file_types=["image"], elem_id="style-images")
    w.st_name = gr.Textbox(label="style name", elem_id="style-name")
    w.st_caption = gr.Textbox(label="caption (one for all images)", placeholder="e.g. a watercolour portrait",
                              elem_id="style-caption")
    with gr.Accordion("advanced", open=False, elem_id="style-advanced"):
        _advanced(w, "st", "size (training resolution, px)")
    w.st_go = gr.Button("Train the style", variant="primary", elem_id="style-go")
    w.st_status = gr.HTML(elem_id="style-status")


def _jobs_tab(w: Widgets) -> None:
    w.jb_refresh = gr.Button("Refresh", elem_id="jobs-refresh")
    w.jb_table = gr.Dataframe(headers=views.JOB_COLUMNS, interactive=False, elem_id="jobs-table", wrap=True)
    with gr.Row():
        w.jb_id = gr.Textbox(label="job id", elem_id="jobs-id")
        w.jb_open = gr.Button("Open in its tab", elem_id="jobs-open")
        w.jb_cancel = gr.Button("Cancel job", variant="stop", elem_id="jobs-cancel")
    w.jb_note = gr.HTML(elem_id="jobs-note")
    gr.Markdown("### People")
    w.pp_table = gr.Dataframe(headers=["name", "trigger word", "base model", "created"], interactive=False,
                              elem_id="people-table")
    with gr.Row():
        w.pp_pick = gr.Dropdown(label="person", choices=[], elem_id="people-pick")
        w.pp_delete = gr.Button("Delete person", variant="stop", elem_id="people-delete")
    w.pp_note = gr.HTML(elem_id="people-note")


# --- behaviour -----------------------------------------------------------------------------------------


def _int(value: Any, label: str) -> int | None:
    text = str(value if value is not None else "").strip()
    if not text:
        return None
    try:
        return int(float(text)) if float(text).is_integer() else int(text)
    except ValueError:
        raise UIError(f"{label}: expected a whole number, got '{text[:40]}'") from None


def _float(value: Any, label: str) -> float | None:
    text = str(value if value is not None else "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise UIError(f"{label}: expected a number, got '{text[:40]}'") from None


def _text(value: Any) -> str | None:
    text = str(value or "").strip()
    return text or None


def _files(value: Any) -> list[str]:
    if not value:
        return []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


class Handlers:
    """The event handlers; each reads the form, talks to the desk, and returns component updates."""

    def __init__(self, desk: JobDesk, w: Widgets, workdir: Path):
        self.desk, self.w, self.workdir = desk, w, workdir

    def bind(self, demo: gr.Blocks, timer: gr.Timer) -> None:
        w = self.w
        watched = self.watched_outputs()
        demo.load(self.on_load, [w.slots], [w.slots, w.seen, w.tabs, w.ready, *watched, *self.catalog_outputs()])
        timer.tick(self.poll, [w.slots, w.seen], [w.seen, *watched])
        w.last_job.change(None, [w.last_job], [w.last_job], js=_URL_JS)

        w.tr_check.click(self.check_photos, [w.tr_files, w.slots], [w.slots, w.tr_report, w.tr_status, w.last_job])
        w.tr_train.click(self.train, [w.tr_files, w.tr_name, w.tr_trigger, w.tr_steps, w.tr_size, w.tr_base, w.tr_seed,
                                      w.slots], [w.slots, w.tr_status, w.last_job])

        w.pt_mode.change(lambda m: (gr.update(visible=m == PERSON_MODE), gr.update(visible=m == PHOTO_MODE)),
                         [w.pt_mode], [w.pt_person, w.pt_photo])
        w.pt_cards.click(self.pick_style, [w.pt_style], [w.pt_style])
        w.pt_style.change(self.style_cards, [w.pt_style], [w.pt_cards])
        w.pt_go.click(self.generate, [w.pt_mode, w.pt_person, w.pt_photo, w.pt_style, w.pt_prompt, w.pt_pose, w.pt_num,
                                      w.pt_seed, w.pt_steps, w.pt_guidance, w.pt_face_w, w.pt_style_w, w.pt_base,
                                      w.pt_size, w.slots],
                      [w.slots, w.pt_status, w.pt_gallery, w.pt_files, w.pt_params, w.last_job])

        w.tp_find.click(self.find_faces, [w.tp_file], [w.tp_upload, w.tp_preview, w.tp_faces, w.tp_photo_face,
                                                        *w.tp_pick])
        w.tp_mode.change(self.template_mode, [w.tp_mode, w.tp_upload, w.tp_photo_face],
                         [w.tp_photo, w.tp_photo_face, *w.tp_pick])
        w.tp_go.click(self.inpaint, [w.tp_upload, w.tp_mode, w.tp_photo, w.tp_photo_face, w.tp_num, w.tp_seed,
                                     w.tp_steps, w.tp_size, w.tp_base, w.slots, *w.tp_pick],
                      [w.slots, w.tp_status, w.tp_gallery, w.tp_files, w.last_job])

        w.st_go.click(self.train_style, [w.st_files, w.st_name, w.st_caption, w.st_steps, w.st_size, w.st_base, w.slots],
                      [w.slots, w.st_status, w.last_job])

        w.jb_refresh.click(self.jobs_and_people, None, [w.jb_table, w.pp_table])
        w.tabs.select(self.jobs_and_people, None, [w.jb_table, w.pp_table])
        w.jb_open.click(self.open_job, [w.jb_id, w.slots], [w.slots, w.seen, w.tabs, w.jb_note, w.last_job])
        w.jb_cancel.click(self.cancel_job, [w.jb_id], [w.jb_note, w.jb_table])
        w.pp_delete.click(self.delete_person, [w.pp_pick], [w.pp_note, *self.catalog_outputs()],
                          js="(name) => (name && confirm('Delete ' + name + '? Its face LoRA is removed.')) ? name : ''")

    # -- what the timer and a page load render -------------------------------------------------------
    def watched_outputs(self) -> list[Any]:
        w = self.w
        return [w.tr_report, w.tr_status, w.pt_status, w.pt_gallery, w.pt_files, w.pt_params, w.tp_status,
                w.tp_gallery, w.tp_files, w.st_status, *self.catalog_outputs()]

    def catalog_outputs(self) -> list[Any]:
        w = self.w
        return [w.pt_person, w.pp_pick, w.pt_style, w.pt_cards, w.jb_table, w.pp_table, *w.tp_pick]

    def on_load(self, slots: dict | None, request: gr.Request):
        """A fresh page: open ``?job=`` if given, re-render every remembered job, fill the pickers."""
        slots = dict(slots or {})
        tab = gr.update()
        wanted = request.query_params.get("job") if request is not None else None
        job = self.desk.job(wanted)
        if job is not None and job.kind in SLOTS:
            slots[SLOTS[job.kind]] = job.id
            tab = gr.update(selected=_tab_of(job.kind))
        seen: dict[str, Any] = {}
        updates = self.render_slots(slots, seen, force=True)
        updates.update(self.catalog())
        return {self.w.slots: slots, self.w.seen: seen, self.w.tabs: tab, self.w.ready: '<span data-ready="1"></span>',
                **updates}

    def poll(self, slots: dict | None, seen: dict | None):
        seen = dict(seen or {})
        updates = self.render_slots(dict(slots or {}), seen)
        return {self.w.seen: seen, **updates}

    def render_slots(self, slots: dict, seen: dict, force: bool = False) -> dict:
        """Updates for every tab whose job changed since this page last showed it."""
        out: dict[Any, Any] = {}
        catalog_changed, new_style = False, None
        for slot in ("prepare", "train", "generate", "inpaint", "style"):
            job = self.desk.job(slots.get(slot))
            sig = None if job is None else [job.id, job.state.value, round(job.progress, 3), job.message]
            if not force and seen.get(slot) == sig:
                continue
            seen[slot] = sig
            if job is None:
                continue
            out.update(self.render_job(slot, job))
            if job.state is JobState.SUCCEEDED and slot in ("train", "style"):
                catalog_changed = True
                new_style = (job.result or {}).get("style") or new_style
        if catalog_changed and not force:
            out.update(self.catalog(new_style))
        return out

    def render_job(self, slot: str, job: Job) -> dict:
        w, done = self.w, job.state is JobState.SUCCEEDED
        if slot == "prepare":
            report = self.prepare_report(job) if done else ""
            return {w.tr_report: views.job_status(job, "checking photos") + report}
        if slot == "train":
            extra = ""
            if done:
                name = (job.result or {}).get("identity")
                extra = (f'<div class="fc-done">Person <b>{views.escape(str(name))}</b> is ready (trigger word '
                         f'"{views.escape(str((job.result or {}).get("trigger_word")))}"): pick it in Portraits or '
                         "Templates.</div>")
            return {w.tr_status: views.job_status(job, "training") + extra}
        if slot == "style":
            extra = ""
            if done:
                extra = (f'<div class="fc-done">Style <b>{views.escape(str((job.result or {}).get("style")))}</b> '
                         "is in the Portraits style gallery.</div>")
            return {w.st_status: views.job_status(job, "training the style") + extra}
        gallery, files, params = self.results(job)
        if slot == "generate":
            return {w.pt_status: views.job_status(job, "portraits"), w.pt_gallery: gallery, w.pt_files: files,
                    w.pt_params: params}
        return {w.tp_status: views.job_status(job, "template"), w.tp_gallery: gallery, w.tp_files: files}

    def prepare_report(self, job: Job) -> str:
        sources = {self.desk.upload_name(i): i for i in job.params.get("photos", [])}

        def accepted(name: str) -> str:
            return views.thumb_data_url(self.desk.file(job, name)) if name in job.files else ""

        def source(name: str) -> str:
            upload = sources.get(name)
            return views.thumb_data_url(self.desk.upload_file(upload)) if upload else ""

        return views.prepare_report(job.result or {}, accepted, source)

    def results(self, job: Job) -> tuple[str, list[str] | None, dict | None]:
        """The ranked cards, the PNGs to download (parameters embedded), and the run's parameters."""
        ranked = self.desk.ranked_images(job)
        cards = views.ranked_cards(ranked, lambda path: f"gradio_api/file={quote(str(path))}") if ranked else ""
        files = [str(r.path) for r in ranked] or None
        params = {"job": job.id, "params": job.params,
                  "images": [{"file": r.name, "rank": r.rank, "similarity": r.similarity, "seed": r.params.get("seed")}
                             for r in ranked]} if ranked else None
        return cards, files, params

    def catalog(self, style: str | None = None) -> dict:
        """Person pickers (newest person chosen), styles and the tables, from the server's identities, styles, jobs."""
        w = self.w
        names = [p.name for p in self.desk.people()]
        styles = self.desk.styles()
        style_names = [s["name"] for s in styles]
        style = style if style in style_names else (style_names[0] if style_names else None)
        person = gr.update(choices=names, value=names[0] if names else None)
        out = {w.pt_person: person, w.pp_pick: gr.update(choices=names, value=names[0] if names else None),
               w.pt_style: gr.update(choices=[(f"{s.get('title') or s['name']} ({s['name']})", s["name"]) for s in styles],
                                     value=style),
               w.pt_cards: views.style_cards(styles, style)}
        out.update({d: gr.update(choices=names) for d in w.tp_pick})
        table, people = self.jobs_and_people()
        out.update({w.jb_table: table, w.pp_table: people})
        return out

    def jobs_and_people(self):
        people = [[p.name, p.trigger_word, p.base_model, p.created or ""] for p in self.desk.people()]
        return views.job_rows(self.desk.jobs()), people

    # -- train a person ------------------------------------------------------------------------------
    def check_photos(self, files: Any, slots: dict | None):
        def values(notes: list[str]) -> dict[str, Any]:
            return {"photos": self.uploads(files, notes, "one or more photos")}

        slots, status, job = self.start(slots, "prepare", "prepare", values, "checking photos")
        if job is None:
            return slots, status, gr.update(), gr.update()
        slots["photos"] = job.params["photos"]
        return slots, status, "", job.id

    def train(self, files: Any, name: str, trigger: str, steps: Any, size: Any, base: str, seed: Any,
              slots: dict | None):
        def values(notes: list[str]) -> dict[str, Any]:
            # photos chosen (again) in the form are uploaded: the same bytes give the same upload ids
            photos = self.uploads(files, notes, "photos") if _files(files) else (slots or {}).get("photos")
            if not photos:
                raise UIError("upload photos first (and check them)")
            return {"photos": photos, "name": (name or "").strip(), "trigger": (trigger or "").strip() or None,
                    "steps": _int(steps, "steps"), "size": _int(size, "size"), "base_model": _text(base),
                    "seed": _int(seed, "seed")}

        slots, status, job = self.start(slots, "train", "train", values, "training")
        if job is not None:
            slots["photos"] = job.params["photos"]
        return slots, status, job.id if job else gr.update()

    # -- portraits -------------------------------------------------------------------------------------
    def pick_style(self, current: str, evt: gr.EventData):
        return getattr(evt, "style", None) or current

    def style_cards(self, selected: str):
        return views.style_cards(self.desk.styles(), selected)

    def generate(self, mode, person, photo, style, prompt, pose, num, seed, steps, guidance, face_w, style_w, base, size,
                 slots):
        def values(notes: list[str]) -> dict[str, Any]:
            who = {"photo": self.uploads(photo, notes, "one photo of the person")} if mode == PHOTO_MODE else \
                {"person": person or None}
            return {**who, "style": style or None, "prompt": (prompt or "").strip() or None,
                    "pose": self.uploads(pose, notes, "pose image")[0] if _files(pose) else None,
                    "num_images": _int(num, "number of images"), "seed": _int(seed, "seed"), "steps": _int(steps, "steps"),
                    "guidance_scale": _float(guidance, "guidance scale"), "face_weight": _float(face_w, "face weight"),
                    "style_weight": _float(style_w, "style weight"), "base_model": _text(base), "size": _text(size)}

        slots, status, job = self.start(slots, "generate", "generate", values, "portraits")
        if job is None:
            return slots, status, gr.update(), gr.update(), gr.update(), gr.update()
        return slots, status, "", None, None, job.id

    # -- templates -------------------------------------------------------------------------------------
    def find_faces(self, template: Any):
        hidden = [gr.update(visible=False, value=None) for _ in range(MAX_TEMPLATE_FACES)]
        files = _files(template)
        up = self.desk.upload(files)
        if not up.ids:
            message = views.refused_uploads(up.refused) or views.error_line("upload a template photo first")
            return "", None, message, gr.update(visible=False), *hidden
        from ..inpainting.api import template_faces

        preview = self.workdir / f"{up.ids[0]}.faces.png"
        try:
            report = template_faces(self.desk.upload_file(up.ids[0]), preview=preview, overwrite=True)
        except FacechainError as e:
            return "", None, views.error_line(str(e)), gr.update(visible=False), *hidden
        faces = report.faces
        usable = [f.index for f in faces if f.size >= report.min_face_size]
        names = [p.name for p in self.desk.people()]
        picks = []
        for i in range(MAX_TEMPLATE_FACES):
            picks.append(gr.update(visible=i in usable, choices=["(keep)", *names], value="(keep)", label=f"face {i}"))
        items = "".join(f'<li data-face="{f.index}">face {f.index}: {f.size:.0f} px'
                        f'{"" if f.index in usable else " (too small to redraw)"}</li>' for f in faces)
        summary = (f'<div class="fc-faces" data-count="{len(faces)}">{len(faces)} face{"s" if len(faces) != 1 else ""} '
                   f"found, numbered left to right<ul>{items}</ul></div>")
        photo_face = gr.update(choices=[str(i) for i in usable], value=str(usable[0]) if usable else None)
        return up.ids[0], str(preview), summary, photo_face, *picks

    def template_mode(self, mode: str, upload: str, photo_face: Any):
        photo = mode == PHOTO_MODE
        picks = [gr.update() if not photo else gr.update(visible=False) for _ in range(MAX_TEMPLATE_FACES)]
        if not photo and upload:  # the face dropdowns come back with a new "Find faces"
            picks = [gr.update() for _ in range(MAX_TEMPLATE_FACES)]
        return gr.update(visible=photo), gr.update(visible=photo), *picks

    def inpaint(self, upload, mode, photo, photo_face, num, seed, steps, size, base, slots, *picks):
        def values(notes: list[str]) -> dict[str, Any]:
            if not upload:
                raise UIError("upload a template and find its faces first")
            if mode == PHOTO_MODE:
                who = {"photo": self.uploads(photo, notes, "one photo of the person"),
                       "face_index": [int(photo_face)] if photo_face not in (None, "") else None}
            else:
                chosen = [(i, p) for i, p in enumerate(picks) if p and p != "(keep)"]
                if not chosen:
                    raise UIError("choose a person for at least one face")
                who = {"person": [p for _, p in chosen], "face_index": [i for i, _ in chosen]}
            return {"template": upload, **who, "num_images": _int(num, "number of images"), "seed": _int(seed, "seed"),
                    "steps": _int(steps, "steps"), "size": _int(size, "size"), "base_model": _text(base)}

        slots, status, job = self.start(slots, "inpaint", "inpaint", values, "template")
        if job is None:
            return slots, status, gr.update(), gr.update(), gr.update()
        return slots, status, "", None, job.id

    # -- train a style ---------------------------------------------------------------------------------
    def train_style(self, files, name, caption, steps, size, base, slots):
        def values(notes: list[str]) -> dict[str, Any]:
            return {"folder": self.uploads(files, notes, "the style's images"), "name": (name or "").strip(),
                    "captions": (caption or "").strip() or None, "steps": _int(steps, "steps"),
                    "size": _int(size, "size"), "base_model": _text(base)}

        slots, status, job = self.start(slots, "style", "train_style", values, "training the style")
        return slots, status, job.id if job else gr.update()

    # -- submitting ------------------------------------------------------------------------------------
    def uploads(self, files: Any, notes: list[str], what: str) -> list[str]:
        """Upload the form's files; refused ones become notes; none accepted is an error naming ``what``."""
        up = self.desk.upload(_files(files))
        notes += up.refused
        if not up.ids:
            raise UIError("" if up.refused else f"upload {what} first")  # the refusals already say why
        return up.ids

    def start(self, slots: dict | None, slot: str, kind: str, values, what: str) -> tuple[dict, str, Job | None]:
        """Build a job's params from the form and queue it: ``(slots, status HTML, the job or None)``."""
        slots = dict(slots or {})
        notes: list[str] = []
        try:
            job = self.desk.submit(kind, values(notes))
        except UIError as e:
            return slots, views.refused_uploads(notes) + (views.error_line(str(e)) if str(e) else ""), None
        slots[slot] = job.id
        return slots, views.refused_uploads(notes) + views.job_status(job, what), job

    # -- jobs and people -------------------------------------------------------------------------------
    def open_job(self, job_id: str, slots: dict | None):
        slots = dict(slots or {})
        job = self.desk.job((job_id or "").strip())
        if job is None:
            return slots, gr.update(), gr.update(), views.error_line(f"no job with id '{job_id}'"), gr.update()
        if job.kind not in SLOTS:
            return slots, gr.update(), gr.update(), views.notice(f"{job.kind} jobs have no tab"), job.id
        slots[SLOTS[job.kind]] = job.id
        return slots, {}, gr.update(selected=_tab_of(job.kind)), views.job_status(job), job.id

    def cancel_job(self, job_id: str):
        try:
            job = self.desk.cancel((job_id or "").strip())
        except UIError as e:
            return views.error_line(str(e)), gr.update()
        return views.job_status(job), views.job_rows(self.desk.jobs())

    def delete_person(self, name: str):
        if not name:
            return {self.w.pp_note: ""}
        try:
            self.desk.delete_person(name)
        except UIError as e:
            return {self.w.pp_note: views.error_line(str(e))}
        return {self.w.pp_note: views.notice(f"deleted '{name}'"), **self.catalog()}


def _tab_of(kind: str) -> str:
    return {"prepare": "train", "train": "train", "generate": "portraits", "inpaint": "templates",
            "train_style": "style"}[kind]


def preview_dir(root: Path) -> Path:
    folder = root / "ui" / "previews"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


__all__ = ["build_ui", "preview_dir"]
