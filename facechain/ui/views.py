"""HTML the UI shows: job status with progress, the prepare report, style cards, tables.

Pure functions of typed values (jobs, styles, reports), so they are tested without a browser and
every page shows a job the same way. Text from users or files is always escaped.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
from html import escape
from pathlib import Path
from typing import Any, Callable, Sequence

from ..service.jobs import Job, JobState

THUMB_PX = 144


def thumb_data_url(path: Path | None, size: int = THUMB_PX) -> str:
    """A small JPEG of an image as a data URL (the report is one self-contained block of HTML)."""
    if path is None or not Path(path).is_file():
        return ""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=80)
    except OSError:
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def error_line(message: str) -> str:
    return f'<div class="fc-error" role="alert">error: {escape(" ".join(message.split()))}</div>'


def notice(message: str) -> str:
    return f'<div class="fc-note">{escape(message)}</div>'


def job_status(job: Job | None, what: str = "") -> str:
    """One job's state, progress bar and message (or its error line): what every tab shows while it waits."""
    if job is None:
        return ""
    pct = int(round(job.progress * 100)) if job.state is not JobState.SUCCEEDED else 100
    label = f"{what} " if what else ""
    head = (f'<div class="fc-job" data-job="{escape(job.id)}" data-state="{job.state.value}">'
            f'<span class="fc-state fc-{job.state.value}">{job.state.value}</span> '
            f'{escape(label)}<code>{escape(job.id)}</code>')
    if job.state is JobState.FAILED:
        return head + error_line(job.error or "failed") + "</div>"
    if job.state is JobState.CANCELLED:
        return head + notice("cancelled") + "</div>"
    bar = (f'<div class="fc-bar" role="progressbar" aria-valuenow="{pct}" aria-valuemin="0" aria-valuemax="100">'
           f'<div style="width:{pct}%"></div></div><span class="fc-pct">{pct}%</span>')
    message = job.message if job.state is not JobState.SUCCEEDED else "done"
    waiting = " (waiting for the jobs before it)" if job.state is JobState.QUEUED and job.after else ""
    return head + bar + f'<div class="fc-msg">{escape(message or "")}{waiting}</div></div>'


def refused_uploads(refused: Sequence[str]) -> str:
    return "".join(error_line(line) for line in refused)


def prepare_report(result: dict[str, Any], accepted_thumb: Callable[[str], str],
                   source_thumb: Callable[[str], str]) -> str:
    """Accepted photos (processed thumbnails) and rejected ones (original thumbnails), each with its reason."""
    accepted = result.get("accepted", [])
    rejected = result.get("rejected", [])
    out = [f'<div class="fc-report"><div class="fc-trigger">Trigger word: <b>{escape(str(result.get("trigger_word") or "?"))}'
           f'</b></div><div class="fc-summary">{len(accepted)} accepted, {len(rejected)} rejected</div>']
    out.append('<div class="fc-cards">')
    for a in accepted:
        out.append(_card(accepted_thumb(a.get("file") or ""), a.get("source") or "", "accepted", "fc-accepted"))
    for r in rejected:
        out.append(_card(source_thumb(r.get("source") or ""), r.get("source") or "", f"rejected: {r.get('reason')}",
                         "fc-rejected"))
    out.append("</div></div>")
    return "".join(out)


def _card(src: str, title: str, caption: str, cls: str) -> str:
    img = f'<img src="{src}" alt="{escape(title)}">' if src else '<div class="fc-noimg"></div>'
    return (f'<figure class="fc-card {cls}">{img}<figcaption><b>{escape(title)}</b><br>{escape(caption)}'
            "</figcaption></figure>")


def style_cards(styles: Sequence[dict[str, Any]], selected: str | None) -> str:
    """The style gallery: name, description, base model, and whether its LoRA is here or must be downloaded."""
    out = ['<div class="fc-styles">']
    for s in styles:
        name = str(s["name"])
        if s.get("style_lora"):
            lora = "LoRA present" if s.get("lora_present") else "LoRA to download"
        else:
            lora = "prompt only (no LoRA)"
        base = s.get("base_model") or "the person's base model"
        if s.get("base_model") and s.get("base_present") is False:
            base += " (to download)"
        cls = "fc-style fc-selected" if name == selected else "fc-style"
        out.append(f'<div class="{cls}" data-style="{escape(name)}"><div class="fc-style-title">'
                   f'{escape(str(s.get("title") or name))}</div><div class="fc-style-name">{escape(name)}'
                   f' · {escape(str(s.get("origin", "")))}</div><div class="fc-style-desc">'
                   f'{escape(str(s.get("description") or ""))}</div><div class="fc-style-meta">base: {escape(base)}'
                   f'<br>{escape(lora)}</div></div>')
    out.append("</div>")
    return "".join(out)


def ranked_cards(images: Sequence[Any], url: Callable[[Path], str]) -> str:
    """Result images best first, each with its rank, similarity score and seed under it, and a link to its PNG."""
    out = ['<div class="fc-cards fc-ranked">']
    for r in images:
        score = "n/a (no face found)" if r.similarity is None else f"{r.similarity:.3f}"
        seed = r.params.get("seed")
        link = url(r.path)
        out.append(f'<figure class="fc-card fc-result" data-rank="{r.rank}" data-similarity="'
                   f'{"" if r.similarity is None else r.similarity}"><a href="{escape(link)}" target="_blank">'
                   f'<img src="{escape(link)}" alt="{escape(r.name)}"></a><figcaption><b>#{r.rank}</b> · similarity '
                   f'{score}<br>{escape(r.name)}{"" if seed is None else f" · seed {escape(str(seed))}"}<br>'
                   f'<a href="{escape(link)}" download="{escape(r.name)}">download PNG</a></figcaption></figure>')
    out.append("</div>")
    return "".join(out)


def when(ts: float | None) -> str:
    return "" if not ts else _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def job_rows(jobs: Sequence[Job]) -> list[list[str]]:
    """The job history table: id, kind, state, progress, what it says (its error when it failed), created."""
    rows = []
    for j in jobs:
        said = j.error if j.state is JobState.FAILED else j.message
        rows.append([j.id, j.kind, j.state.value, f"{int(round(j.progress * 100))}%", " ".join((said or "").split()),
                     when(j.created)])
    return rows


JOB_COLUMNS = ["job", "kind", "state", "progress", "message / error", "created"]

CSS = """
.fc-error { color: #b00020; font-weight: 600; margin: 4px 0; }
.fc-note { color: #555; margin: 4px 0; }
.fc-job { margin: 6px 0; }
.fc-state { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.85em; background: #ddd; }
.fc-running { background: #cce5ff; } .fc-queued { background: #eee; } .fc-succeeded { background: #c8f0c8; }
.fc-failed { background: #f8c8c8; } .fc-cancelled { background: #eee; }
.fc-bar { display: inline-block; width: 60%; height: 10px; background: #eee; border-radius: 5px; vertical-align: middle; }
.fc-bar > div { height: 100%; background: #3b82f6; border-radius: 5px; transition: width 0.4s; }
.fc-pct { margin-left: 8px; font-variant-numeric: tabular-nums; }
.fc-msg { color: #555; font-size: 0.9em; }
.fc-cards, .fc-styles { display: flex; flex-wrap: wrap; gap: 10px; }
.fc-card { width: 160px; margin: 0; padding: 6px; border-radius: 8px; border: 2px solid #ccc; font-size: 0.85em; }
.fc-card img { width: 144px; height: 144px; object-fit: cover; border-radius: 4px; }
.fc-accepted { border-color: #4caf50; } .fc-rejected { border-color: #e53935; }
.fc-result { width: 212px; } .fc-result img { width: 200px; height: 200px; }
.fc-noimg { width: 144px; height: 144px; background: #eee; }
.fc-trigger { font-size: 1.05em; margin-bottom: 4px; }
.fc-styles { max-height: 420px; overflow-y: auto; }
.fc-style { width: 200px; padding: 8px; border: 1px solid #ccc; border-radius: 8px; font-size: 0.85em; }
.fc-style.fc-selected { border: 2px solid #3b82f6; background: #eef5ff; }
.fc-style-title { font-weight: 700; font-size: 1.05em; }
.fc-style-name { color: #777; } .fc-style-meta { color: #444; margin-top: 4px; overflow-wrap: anywhere; }
"""
