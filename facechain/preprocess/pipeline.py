"""``prepare``: personal photos → a training folder (paper section 2.1), in the paper's order.

For every photo: load (EXIF, any mode) → turn upright → find the one dominant face → level it
with the paper's least-squares rotation → crop to 512² with the face centred and 0.35-0.45 of
the side → check size, blur → identity embedding, gender, age → head segmentation (background
white) → skin retouching → tags. Over all photos: drop other people (identity outliers), decide
the trigger word from gender and age, pick the best face as the template, write the folder.

Output folder (written atomically: nothing half-written is ever left)::

    images/000_<name>.png ...   512x512 RGB training images
    metadata.jsonl              {"file_name": "images/...png", "text": "<trigger>, <tags>"} per image
    template_face.png           best face, level, background kept (face fusion's source)
    report.json                 trigger word, accepted/rejected with reasons, angles, quality, ...
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Sequence

from .. import options, progress
from ..atomic import atomic_directory, atomic_write_text
from ..config import config_to_dict, load_config
from ..errors import FacechainError, InputError, NoUsablePhotosError, translate
from ..image_io import list_images, save_png
from ..locking import output_lock
from ..outputs import OutputKind, announce, check_output
from ..perception import FaceAnalyzer
from ..types import Rejection
from .components import PrepareComponents, StepTimer
from .config import PrepareConfig
from .photo import PhotoRejected, ProcessedPhoto, process_photo
from .result import IMAGES, METADATA, REPORT, TEMPLATE_FACE, AcceptedPhoto, PrepareResult
from .selection import Selection, select

__all__ = ["prepare", "PrepareResult", "PrepareConfig", "AcceptedPhoto"]

log = logging.getLogger(__name__)

#: What ``--overwrite`` may replace: a folder this verb wrote.
PREPARED_FOLDER = OutputKind("prepared folder", (REPORT, METADATA))


def prepare(
    photos: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    config: str | Path | None = None,
    overwrite: bool = False,
    trigger: str | None = None,
    retouch: bool | None = None,
    retoucher: str | None = None,
    segmenter: str | None = None,
    detector: str | None = None,
    orientation: str | None = None,
    orientation_model: str | None = None,
    quality_model: str | None = None,
    tagger: str | None = None,
    tagger_model: str | None = None,
    size: int | str | None = None,
    min_face_size: int | None = None,
    blur_threshold: float | None = None,
    identity_threshold: float | None = None,
    quiet: bool = False,
    analyzer: FaceAnalyzer | None = None,
) -> PrepareResult:
    """Turn personal photos (files and/or folders) into a training folder at ``output``.

    The keywords are the ``facechain prepare`` flags (``trigger="a handsome man"``, ``retouch=False``,
    ``segmenter="none"``, ``min_face_size=64``, ...); ``None`` means "not given". Precedence:
    keyword > ``config``'s ``prepare:`` section > :class:`PrepareConfig` default. ``size`` is the
    side of the square training images (config field ``resolution``). Other :class:`PrepareConfig`
    fields are set in the config file. ``quiet``: no progress. ``analyzer``: a :class:`FaceAnalyzer`
    to use (and reuse across calls); by default the process-wide one for ``detector``. Raises
    :class:`NoUsablePhotosError` (nothing written) when every photo is rejected,
    :class:`OutputExistsError` for a non-empty ``output`` without ``overwrite``.
    """
    given = options.validate(dict(
        trigger=trigger, retouch=retouch, retoucher=retoucher, segmenter=segmenter, detector=detector,
        orientation=orientation, orientation_model=orientation_model, quality_model=quality_model, tagger=tagger,
        tagger_model=tagger_model, size=size, min_face_size=min_face_size, blur_threshold=blur_threshold,
        identity_threshold=identity_threshold), square_size=True)
    given["resolution"] = given.pop("size")
    cfg = load_config(PrepareConfig, "prepare", config, given)
    output = Path(output)
    inputs = [photos] if isinstance(photos, (str, Path)) else list(photos)
    if not inputs:
        raise InputError("photos", "no photos given")
    for p in map(Path, inputs):
        if not p.exists():
            raise InputError(p, "not found")
    paths = list_images(inputs)
    if not paths:
        raise NoUsablePhotosError(f"no image files found in {', '.join(map(str, inputs)) or 'the input'}")
    # fail before the slow part: an output on an input, someone else's folder, a read-only or full disk
    note = check_output(output, PREPARED_FOLDER, inputs=[*inputs, config], overwrite=overwrite,
                        need_bytes=(len(paths) + 1) * cfg.resolution ** 2 * 3 // 2)

    with output_lock(output), progress.reporting(quiet=quiet):
        if analyzer is None:
            progress.say(f"loading face models ({cfg.detector} detector)")
        components = PrepareComponents.from_config(cfg, analyzer)
        timer = StepTimer()
        processed, rejected = _process_all(paths, cfg, components, timer)

        with timer("selection"):
            selection, outliers = select(processed, components.analyzer, cfg.identity_threshold, cfg.trigger)
            order = {p: i for i, p in enumerate(paths)}
            rejected = sorted(rejected + outliers, key=lambda r: order.get(Path(r.source), len(order)))
        if selection is None:
            raise NoUsablePhotosError(_nothing_usable(len(paths), rejected))
        if not selection.template_checked:
            log.warning("no template crop has exactly one detectable face; using the best-quality one")

        announce(note)
        return _write(output, overwrite, cfg, selection, rejected, timer)


def _process_all(paths: list[Path], cfg: PrepareConfig, comp: PrepareComponents, timer: StepTimer) -> tuple[list[ProcessedPhoto], list[Rejection]]:
    processed: list[ProcessedPhoto] = []
    rejected: list[Rejection] = []
    with progress.task("preparing photos", total=len(paths), unit="photo") as bar:
        for path in paths:
            try:
                processed.append(process_photo(path, cfg, comp, timer))
            except PhotoRejected as r:
                rejected.append(Rejection(path, r.reason))
            except FacechainError:
                raise  # a missing model or bad setting concerns every photo: stop
            except Exception as e:  # one odd photo must not end the run
                known = translate(e, path)
                if known is None:  # a bug worth a traceback in the log (with --verbose)
                    log.info("%s: processing failed", path, exc_info=True)
                first = (str(e).splitlines() or [""])[0]
                reason = known.reason if isinstance(known, InputError) else f"could not be processed ({type(e).__name__}: {first})"
                rejected.append(Rejection(path, reason))
            bar.update(1, message=path.name[-30:])
    return processed, rejected


def _nothing_usable(n: int, rejected: list[Rejection]) -> str:
    reasons = "; ".join(f"{Path(r.source).name}: {r.reason}" for r in rejected)
    return f"no usable photo among {n}: {reasons}"


def _safe_stem(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem).strip("._") or "photo"
    return stem[:60]


def _write(output: Path, overwrite: bool, cfg: PrepareConfig, sel: Selection, rejected: list[Rejection], timer: StepTimer) -> PrepareResult:
    """Write the folder atomically and return its description."""
    accepted: list[AcceptedPhoto] = []
    with atomic_directory(output, overwrite=overwrite) as tmp:
        lines = []
        for i, p in enumerate(sel.kept):
            rel = f"{IMAGES}/{i:03d}_{_safe_stem(p.source)}.png"
            caption = ", ".join([sel.trigger_word, *p.tags])
            save_png(tmp / rel, p.image, text={"caption": caption, "source": p.source.name})
            lines.append(json.dumps({"file_name": rel, "text": caption}, ensure_ascii=False))
            accepted.append(
                AcceptedPhoto(
                    source=p.source,
                    output=output / rel,
                    caption=caption,
                    quality=float(p.face.quality or 0.0),
                    quality_parts=dict(p.face.quality_parts),
                    angles=p.angles,
                    gender=p.face.gender,
                    age=p.face.age,
                    tags=list(p.tags),
                    face=p.measures,
                    source_face_px=p.source_face_px,
                    similarity=sel.similarity.get(id(p)),
                )
            )
        atomic_write_text(tmp / METADATA, "\n".join(lines) + "\n")
        save_png(tmp / TEMPLATE_FACE, sel.template.template, text={"source": sel.template.source.name})
        result = PrepareResult(
            output_dir=output,
            trigger_word=sel.trigger_word,
            accepted=accepted,
            rejected=rejected,
            template_face=output / TEMPLATE_FACE,
            tags_frequent=sel.tags_frequent,
            template_embedding=[float(v) for v in sel.template_embedding],
            gender=sel.person.gender,
            age=sel.person.age,
            template_source=sel.template.source,
            timings=timer.as_dict(),
            config=config_to_dict(cfg),
        )
        atomic_write_text(tmp / REPORT, json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
    return result
