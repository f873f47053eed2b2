"""Robust image loading and saving.

Loading applies EXIF orientation and converts every mode (RGBA, LA, P, CMYK, I;16, F, ...) to
8-bit RGB; HEIC/HEIF works when the optional ``pillow-heif`` plugin is installed. Problems
become :class:`~facechain.errors.InputError` with a one-line reason naming the file.

A pixel limit of ours (:func:`max_pixels`, default 150 megapixels, ``FACECHAIN_MAX_PIXELS`` to
change it) is checked from the file's header before anything is decoded: a tiny file can declare
19000x19000 pixels and take gigabytes to decode.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from .atomic import atomic_write_bytes
from .errors import InputError, translate

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif"}
MIN_SIDE = 32

try:  # optional HEIC support
    import pillow_heif  # type: ignore

    pillow_heif.register_heif_opener()
except Exception:  # pragma: no cover - plugin not installed
    pillow_heif = None

#: Default pixel limit: above 108-megapixel phone sensors and 150-megapixel medium format; an RGB
#: decode of that many pixels takes about 1.5 GB at its peak.
DEFAULT_MAX_PIXELS = 150_000_000
MAX_PIXELS_ENV = "FACECHAIN_MAX_PIXELS"


def max_pixels() -> int:
    """The largest image (width x height) facechain decodes: ``$FACECHAIN_MAX_PIXELS`` or 150 megapixels."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        raise InputError(MAX_PIXELS_ENV, f"must be a number of pixels, got {raw!r}") from None
    if value < MIN_SIDE * MIN_SIDE:
        raise InputError(MAX_PIXELS_ENV, f"must be at least {MIN_SIDE * MIN_SIDE}, got {value}")
    return value


def check_pixel_limit(path: Path | str, size: tuple[int, int]) -> None:
    """Refuse an image whose header declares more pixels than :func:`max_pixels` (before decoding it)."""
    w, h = size
    if w * h > max_pixels():
        raise _too_large(path, w * h, f"{w}x{h} = ")


def _too_large(path: Path | str, pixels: int, dims: str = "") -> InputError:
    return InputError(path, f"image too large to decode safely ({dims}{pixels / 1e6:.0f} megapixels; the limit is "
                            f"{max_pixels() / 1e6:g}, raise it with {MAX_PIXELS_ENV}=N)")


def _open(path: Path) -> Image.Image:
    """``Image.open`` (header only) with PIL's own bomb check aligned to our limit."""
    Image.MAX_IMAGE_PIXELS = 4 * max_pixels()  # PIL's own check: a backstop far above ours (which names the size)
    try:
        return Image.open(path)
    except Image.DecompressionBombError as e:
        m = re.search(r"\((\d+) pixels\)", str(e))
        raise _too_large(path, int(m.group(1)) if m else 0) from None


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
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as e:
        raise translate(e, path) or InputError(path, "cannot read it") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(path, "is a folder, not an image")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(path, "not a regular file (a device, pipe or socket)")
    if st.st_size == 0:
        raise InputError(path, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _open(path) as im:
                check_pixel_limit(path, im.size)
                im.load()
                im = ImageOps.exif_transpose(im) or im
                if max_side and max(im.size) > max_side:
                    im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
                rgb = _to_rgb(im)
    except InputError:
        raise
    except UnidentifiedImageError:
        if path.suffix.lower() in (".heic", ".heif") and pillow_heif is None:
            raise InputError(path, "HEIC image needs the optional plugin: pip install 'facechain[heic]'") from None
        raise InputError(path, "not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        known = translate(e, path)
        if known is not None and not str(known).endswith("not found"):
            raise known from None
        msg = str(e).lower()
        if "truncated" in msg or "premature" in msg or "broken" in msg or "image file is" in msg:
            raise InputError(path, "truncated or corrupt image") from None
        raise InputError(path, f"cannot decode image ({_first_line(e)})") from None
    except MemoryError:
        raise InputError(path, "not enough memory to decode this image") from None
    except Exception as e:  # decoders raise many kinds (struct.error, IndexError, ...) on malformed files
        known = translate(e, path)
        if known is not None:
            raise known from None
        raise InputError(path, f"cannot decode image ({type(e).__name__}: {_first_line(e)})") from None
    arr = np.asarray(rgb, dtype=np.uint8)
    if min(arr.shape[:2]) < MIN_SIDE:
        raise InputError(path, f"image too small ({arr.shape[1]}x{arr.shape[0]} px, need at least {MIN_SIDE})")
    return np.ascontiguousarray(arr)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:120] if lines else type(e).__name__


def check_image(path: Path | str) -> tuple[int, int]:
    """What :func:`load_image` would refuse, from the header only (cheap; nothing decoded): a missing or
    special file, an unknown format, too many pixels. Returns ``(width, height)``."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as e:
        raise translate(e, path) or InputError(path, "cannot read it") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(path, "is a folder, not an image" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, pipe or socket)")
    size = image_size(path)
    check_pixel_limit(path, size)
    return size


def image_size(path: Path | str) -> tuple[int, int]:
    """``(width, height)`` from the header, without decoding (one-line :class:`InputError` otherwise)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _open(path) as im:
                return im.size
    except Exception as e:
        raise translate(e, path) or InputError(path, f"cannot read image ({_first_line(e)})") from None


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


def _utf8_safe(text: str) -> str:
    """File names that are not UTF-8 arrive as lone surrogates, which PNG text cannot hold: show their
    original bytes as ``\\xNN`` (as the terminal does)."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def save_png(path: Path | str, image: np.ndarray | Image.Image, text: dict[str, Any] | None = None) -> None:
    """Save a PNG atomically, embedding ``text`` as PNG text chunks (values JSON-stringified by caller)."""
    img = image if isinstance(image, Image.Image) else to_pil(image)
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(_utf8_safe(str(k)), _utf8_safe(str(v)))
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


def rgb_array(image_rgb) -> np.ndarray:
    """A contiguous (H, W, 3) uint8 RGB array, or a one-line InputError (for models given arrays, not files)."""
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError("image", f"expected an RGB uint8 array (H, W, 3), got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)
