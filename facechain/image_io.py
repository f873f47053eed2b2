"""Robust image loading and saving.

Loading applies EXIF orientation and converts every mode (RGBA, LA, P, CMYK, I;16, F, ...) to
8-bit RGB; HEIC/HEIF works when the optional ``pillow-heif`` plugin is installed. Problems
become :class:`~facechain.errors.InputError` with a one-line reason naming the file.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from .atomic import atomic_write_bytes
from .errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif"}
MIN_SIDE = 32

try:  # optional HEIC support
    import pillow_heif  # type: ignore

    pillow_heif.register_heif_opener()
except Exception:  # pragma: no cover - plugin not installed
    pillow_heif = None

Image.MAX_IMAGE_PIXELS = 200_000_000  # allow big photos; we downscale right after opening


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 1.0
        scale = 255.0 / (65535.0 if hi > 255 else max(hi, 1.0)) if img.mode != "F" else 255.0 / max(hi, 1e-6)
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    return img.convert("RGB")


def load_image(path: Path | str, max_side: int | None = None) -> np.ndarray:
    """Load ``path`` as an upright ``(H, W, 3)`` uint8 RGB array.

    ``max_side`` downscales very large photos (aspect kept) before any detector sees them.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, not an image")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                im.load()
                im = ImageOps.exif_transpose(im) or im
                if max_side and max(im.size) > max_side:
                    im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
                rgb = _to_rgb(im)
    except UnidentifiedImageError:
        if path.suffix.lower() in (".heic", ".heif") and pillow_heif is None:
            raise InputError(path, "HEIC image needs the optional plugin: pip install 'facechain[heic]'") from None
        raise InputError(path, "not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        msg = str(e).lower()
        if "truncated" in msg or "premature" in msg or "broken" in msg or "image file is" in msg:
            raise InputError(path, "truncated or corrupt image") from None
        raise InputError(path, f"cannot decode image ({e})") from None
    arr = np.asarray(rgb, dtype=np.uint8)
    if min(arr.shape[:2]) < MIN_SIDE:
        raise InputError(path, f"image too small ({arr.shape[1]}x{arr.shape[0]} px, need at least {MIN_SIDE})")
    return np.ascontiguousarray(arr)


def list_images(inputs: list[Path | str]) -> list[Path]:
    """Expand files and folders (non-recursive, sorted) into image paths; keeps explicit files."""
    out: list[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out


def to_pil(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.asarray(arr, dtype=np.uint8))


def save_png(path: Path | str, image: np.ndarray | Image.Image, text: dict[str, Any] | None = None) -> None:
    """Save a PNG atomically, embedding ``text`` as PNG text chunks (values JSON-stringified by caller)."""
    img = image if isinstance(image, Image.Image) else to_pil(image)
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(str(k), str(v))
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    atomic_write_bytes(path, buf.getvalue())


def save_jpeg(path: Path | str, image: np.ndarray | Image.Image, quality: int = 90) -> None:
    img = image if isinstance(image, Image.Image) else to_pil(image)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    atomic_write_bytes(path, buf.getvalue())


# --- untrusted images (uploads to the job service) -----------------------------------------------

#: Formats an untrusted upload may have. Pillow's other plugins stay off: some hand the file to
#: external programs (EPS -> Ghostscript) or parse rarely used, rarely audited formats.
SAFE_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF") + (("HEIF",) if pillow_heif is not None else ())


class NotAnImageError(InputError):
    """The bytes are not an image in one of :data:`SAFE_FORMATS`."""


class ImageTooLargeError(InputError):
    """The image declares more pixels than allowed (checked from its header, before decoding)."""


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int


def inspect_image(path: Path | str, max_pixels: int) -> ImageHeader:
    """Check an untrusted image file: its header first (size limit before a single pixel is decoded,
    so a 50000x50000 PNG costs nothing), then one full decode (truncated or corrupt files fail here)."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise InputError(path, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.init()  # registers every plugin, so each safe format is known by name
            with Image.open(path, formats=[f for f in SAFE_FORMATS if f in Image.OPEN]) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise ImageTooLargeError(path, f"image too large: {width}x{height} pixels (limit {max_pixels:,} pixels)")
                fmt = im.format or "unknown"
                im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        found = re.search(r"\((\d+) pixels\)", str(e))  # Pillow's own check fired first (far beyond the limit)
        size = f"{int(found.group(1)):,} pixels" if found else "beyond Pillow's decompression-bomb limit"
        raise ImageTooLargeError(path, f"image too large: {size} (limit {max_pixels:,} pixels)") from None
    except UnidentifiedImageError:
        raise NotAnImageError(path, f"not an image (accepted formats: {', '.join(SAFE_FORMATS)})") from None
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = str(e).lower()
        reason = "truncated or corrupt image" if ("truncated" in msg or "premature" in msg or "broken" in msg) \
            else f"cannot decode image ({' '.join(str(e).split())[:120]})"
        raise InputError(path, reason) from None
    if width < 1 or height < 1:
        raise InputError(path, "image has no pixels")
    return ImageHeader(fmt, width, height)
