"""``facechain.talk``: a portrait and speech in, an MP4 of that portrait speaking out.

The story of :func:`talk`:

1. the portrait (a file, a PIL image, an array, or any result with an ``.image``) is brought to
   the output size, its face found by the face mesh (one face, or ``face_index``);
2. the speech is decoded (``audio``) or synthesised (``text``) and checked (not silent, not
   longer than ``max_seconds``);
3. the backend renders the frames chunk by chunk (progress per chunk); the optional enhancer
   doubles each frame's resolution; frames stream into an H.264 MP4 with the speech, written
   atomically.
"""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ... import progress
from ...atomic import check_destination
from ...errors import FacechainError, InputError
from ...image_io import load_image
from .audio import DEFAULT_MAX_SECONDS, Audio, ffmpeg_exe, load_audio
from .backend import TalkJob, get_backend
from .face_mesh import FaceMesh, get_face_mesh_model
from .motion import frame_count

DEFAULT_FPS = 25.0
MAX_SIDE = 512  # the default output's long side: the size of a generated portrait
CHUNK_SECONDS = 2.0  # frames held in memory at once (50 frames of 512 px: 39 MB)


@dataclass
class TalkResult:
    """What :func:`talk` made: the video file and how it was made."""

    video: Path
    seconds: float  # the speech's duration (the video's, within one frame)
    frames: int
    fps: float
    backend: str
    face_box: tuple[float, float, float, float]  # in the output frame's pixels
    size: tuple[int, int]  # (width, height) of the video
    metadata: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        w, h = self.size
        return (f"TalkResult('{self.video}', {self.seconds:.2f} s, {self.frames} frames @ {self.fps:g} fps, "
                f"{w}x{h}, backend={self.backend})")

    def to_json(self) -> dict[str, Any]:
        return {"video": str(self.video), "seconds": round(self.seconds, 3), "frames": self.frames, "fps": self.fps,
                "backend": self.backend, "face_box": [round(v, 1) for v in self.face_box], "size": list(self.size),
                "metadata": self.metadata}


# --- inputs ----------------------------------------------------------------------------------
def _portrait_array(portrait: Any) -> tuple[np.ndarray, str]:
    """RGB uint8 array and a name for messages, from a path, PIL image, array or result object."""
    if isinstance(portrait, (str, Path)):
        return load_image(portrait), str(portrait)
    image = getattr(portrait, "image", portrait)
    path = getattr(portrait, "path", None)
    name = str(path) if path else "portrait"
    try:
        from PIL import Image

        if isinstance(image, Image.Image):
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy(), name
    except ImportError:  # pragma: no cover - PIL is a core dependency
        pass
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image.astype(np.uint8)), name
    raise InputError(name, f"not a portrait: expected an image file, a PIL image, an RGB array or a result with .image, "
                           f"got {type(portrait).__name__}")


def _parse_size(size: int | str | tuple[int, int] | None) -> tuple[int, int] | int | None:
    """``None``, ``N`` (long side) or ``(W, H)`` / ``"WxH"``."""
    if size is None or isinstance(size, int):
        return size
    if isinstance(size, str):
        text = size.lower().strip()
        try:
            if "x" in text:
                w, h = (int(v) for v in text.split("x"))
                return (w, h)
            return int(text)
        except ValueError:
            raise InputError(f"--size {size}", "expected N or WxH") from None
    w, h = size
    return (int(w), int(h))


def _even(v: float) -> int:
    return max(2, int(round(v / 2)) * 2)


def fit_frame(image: np.ndarray, size: tuple[int, int] | int | None, face_centre: np.ndarray | None) -> tuple[np.ndarray, float, tuple[float, float]]:
    """The portrait at the output size (even sides): scaled to a long side, or cropped to W:H
    around the face and scaled. Returns the frame, the scale and the crop offset (original px)."""
    h, w = image.shape[:2]
    if size is None:
        long_side = min(max(h, w), MAX_SIDE)
        size = long_side
    if isinstance(size, int):
        if size < 64:
            raise InputError(f"--size {size}", "too small (at least 64 px)")
        scale = size / max(h, w)
        out_w, out_h = _even(w * scale), _even(h * scale)
        crop = (0.0, 0.0, float(w), float(h))
    else:
        out_w, out_h = size
        if min(out_w, out_h) < 64 or out_w % 2 or out_h % 2:
            raise InputError(f"--size {out_w}x{out_h}", "sides must be even and at least 64 px")
        aspect = out_w / out_h
        cw, ch = (float(w), w / aspect) if w / h < aspect else (h * aspect, float(h))
        cx, cy = (face_centre if face_centre is not None else np.array([w / 2, h / 2]))
        x0 = float(np.clip(cx - cw / 2, 0, w - cw))
        y0 = float(np.clip(cy - ch / 2, 0, h - ch))
        crop = (x0, y0, cw, ch)
    x0, y0, cw, ch = crop
    region = image[int(round(y0)):int(round(y0 + ch)), int(round(x0)):int(round(x0 + cw))]
    interp = cv2.INTER_AREA if out_w < region.shape[1] else cv2.INTER_CUBIC
    frame = cv2.resize(region, (out_w, out_h), interpolation=interp)
    return np.ascontiguousarray(frame), out_w / max(region.shape[1], 1), (x0, y0)


def choose_face(faces: list[FaceMesh], face_index: int | None, name: str) -> FaceMesh:
    """The one face to animate; one-line errors for none, several (without an index) or a bad index."""
    if not faces:
        raise InputError(name, "no face found in the portrait")
    if face_index is None:
        if len(faces) > 1:
            raise InputError(name, f"{len(faces)} faces found; choose one with --face-index 0..{len(faces) - 1} "
                                   "(numbered left to right)")
        return faces[0]
    if not 0 <= face_index < len(faces):
        raise InputError(name, f"--face-index {face_index} is out of range ({len(faces)} face{'s' if len(faces) != 1 else ''}, "
                               f"numbered 0..{len(faces) - 1} left to right)")
    return faces[face_index]


def _speech(audio: Any, text: str | None, max_seconds: float, workdir: Path) -> tuple[Audio, str]:
    if (audio is None) == (text is None):
        raise FacechainError("give exactly one of --audio FILE or --text \"...\"")
    if text is not None:
        from .tts import synthesize

        path = synthesize(text, workdir)
        return load_audio(path, max_seconds=max_seconds), f"text ({len(text)} characters)"
    if isinstance(audio, Audio):
        from .audio import check_speech

        return check_speech(audio, max_seconds), audio.source
    return load_audio(audio, max_seconds=max_seconds), str(audio)


def _default_output(portrait: Any, name: str) -> Path:
    stem = Path(name).stem if isinstance(portrait, (str, Path)) or name != "portrait" else "portrait"
    return Path(f"{stem}.talk.mp4")


# --- the verb --------------------------------------------------------------------------------
def talk(
    portrait: Any,
    *,
    audio: str | Path | Audio | None = None,
    text: str | None = None,
    output: str | Path | None = None,
    fps: float = DEFAULT_FPS,
    size: int | str | tuple[int, int] | None = None,
    enhance: bool = False,
    face_index: int | None = None,
    backend: str = "offline",
    seed: int | None = None,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    overwrite: bool = False,
    quiet: bool = False,
    device: str = "auto",
) -> TalkResult:
    """Make a video of ``portrait`` speaking ``audio`` (a file) or ``text`` (through TTS).

    ``size``: the output's long side (N) or exact ``WxH`` (cropped around the face); default: the
    portrait's size, long side at most 512. ``enhance`` doubles the resolution with GFP-GAN.
    ``seed`` makes blinks and head motion reproducible (default: random, recorded in metadata).
    """
    from .video import VideoWriter

    from ... import options

    options.validate(dict(fps=fps, size=size, face_index=face_index, backend=backend, seed=seed, max_seconds=max_seconds,
                          device=device))
    t0 = time.monotonic()
    ffmpeg_exe()  # before any work: one line naming the extra when it is not installed
    if not 1 <= fps <= 60:
        raise InputError(f"--fps {fps:g}", "must be between 1 and 60")
    with progress.reporting(quiet=quiet):
        image, name = _portrait_array(portrait)
        out = Path(output) if output is not None else _default_output(portrait, name)
        if out.suffix.lower() != ".mp4":
            raise InputError(out, "the output must be an .mp4 file")
        check_destination(out, overwrite)
        wanted = _parse_size(size)
        mesh_model = get_face_mesh_model()
        if isinstance(wanted, tuple):  # an exact WxH is cropped around the chosen face
            chosen = choose_face(mesh_model.faces(image), face_index, name)
            centre = chosen.mesh_box.reshape(2, 2).mean(0)
            frame, scale, offset = fit_frame(image, wanted, centre)
            expected = (centre - np.array(offset)) * scale
            faces = mesh_model.faces(frame)
            if not faces:
                raise InputError(name, "no face found in the portrait at the output size")
            face = min(faces, key=lambda f: float(np.linalg.norm(f.mesh_box.reshape(2, 2).mean(0) - expected)))
        else:
            frame, _, _ = fit_frame(image, wanted, None)
            face = choose_face(mesh_model.faces(frame), face_index, name)
        renderer = get_backend(backend, device)
        enhancer = None
        if enhance:
            from .enhance import load_enhancer

            enhancer = load_enhancer(device)
        seed = random.randrange(2**31) if seed is None else int(seed)
        with tempfile.TemporaryDirectory(prefix="facechain-talk-") as work:
            speech, speech_name = _speech(audio, text, max_seconds, Path(work))
            n = frame_count(speech, fps)
            job = TalkJob(frame, face, speech, float(fps), n, seed)
            h, w = frame.shape[:2]
            out_size = (w * 2, h * 2) if enhancer is not None else (w, h)
            chunk = max(1, int(CHUNK_SECONDS * fps))
            with progress.task("talking head", total=n, unit="frame") as bar, \
                    VideoWriter(out, out_size, fps, speech, overwrite=overwrite) as video:
                for part in renderer.frames(job, chunk):
                    for i, img in enumerate(part.images):
                        if enhancer is not None:
                            five = part.five_points[i] if part.five_points is not None else face.five_points()
                            img = enhancer(img, five)
                        video.write(img)
                    bar.update(len(part.images))
            written = video.frames
        if written != n:
            raise FacechainError(f"backend '{renderer.name}' rendered {written} frames, expected {n}")
    box = face.mesh_box * (2 if enhancer is not None else 1)
    meta = {"portrait": name, "speech": speech_name, "seed": seed, "enhance": enhancer.name if enhancer else None,
            "audio_seconds": round(speech.seconds, 4), "compute_seconds": round(time.monotonic() - t0, 2),
            "face_score": round(face.score, 3)}
    return TalkResult(out, speech.seconds, n, float(fps), renderer.name, tuple(float(v) for v in box), out_size, meta)
