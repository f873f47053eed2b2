"""Uploaded images: checked, limited and stored by content (their sha256), never by the client's name.

An upload is read in chunks up to ``max_bytes`` (more is refused without storing it), written to a
temporary file, checked with :func:`facechain.image_io.inspect_image` (pixel limit from the header
before any decoding, then one full decode), and renamed to ``uploads/<h[:2]>/<h><ext>``. The same
bytes uploaded twice are stored once. A job sees its uploads as hard links with sanitised names in
its own ``input/`` folder, so reports show the user's file names and nothing can escape the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError
from ..image_io import ImageTooLargeError, NotAnImageError, inspect_image
from .errors import ServiceError
from .jobs import now
from .store import JobStore, UploadRecord

_EXT = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif", "GIF": ".gif",
        "HEIF": ".heic"}
_ID_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20
_STALE_S = 3600.0  # a temporary upload file older than this belongs to no request any more


def safe_filename(name: str | None, fallback: str, ext: str) -> str:
    """The client's base name reduced to ``[A-Za-z0-9._-]``, no leading dot, with the real extension."""
    base = re.split(r"[\\/]", name or "")[-1]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(base).stem).strip("._-")[:80]
    return (stem or fallback) + ext


class UploadStore:
    def __init__(self, store: JobStore, folder: Path, *, max_bytes: int, max_pixels: int):
        self.store, self.folder = store, Path(folder)
        self.max_bytes, self.max_pixels = max_bytes, max_pixels
        (self.folder / "tmp").mkdir(parents=True, exist_ok=True)
        for stale in (self.folder / "tmp").iterdir():  # left by a server killed mid-upload
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > _STALE_S:
                    stale.unlink()

    def save(self, stream: BinaryIO, filename: str | None) -> UploadRecord:
        """Check and store one uploaded file; :class:`ServiceError` 413/415/422 names the file and reason."""
        shown = safe_filename(filename, "upload", Path(filename or "").suffix.lower()[:8])
        fd, tmp_name = tempfile.mkstemp(dir=self.folder / "tmp")
        tmp = Path(tmp_name)
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ServiceError(413, f"{shown}: file too large (limit {self.max_bytes:,} bytes)")
                    digest.update(chunk)
                    out.write(chunk)
            try:
                header = inspect_image(tmp, self.max_pixels)
            except ImageTooLargeError as e:
                raise ServiceError(413, f"{shown}: {e.reason}") from None
            except NotAnImageError as e:
                raise ServiceError(415, f"{shown}: {e.reason}") from None
            except InputError as e:
                raise ServiceError(422, f"{shown}: {e.reason}") from None
            upload_id = digest.hexdigest()
            ext = _EXT.get(header.format, ".img")
            final = self.path_for(upload_id, ext)
            if not final.exists():
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
            rec = UploadRecord(upload_id, safe_filename(filename, upload_id[:12], ext), header.format, header.width,
                               header.height, size, now())
            self.store.add_upload(rec)
            return rec
        finally:
            tmp.unlink(missing_ok=True)

    def path_for(self, upload_id: str, ext: str) -> Path:
        return self.folder / upload_id[:2] / f"{upload_id}{ext}"

    def require(self, upload_id: object, param: str) -> UploadRecord:
        """The upload a job parameter names; 422 for anything that is not a known upload id."""
        if not isinstance(upload_id, str) or not _ID_RE.match(upload_id):
            raise ServiceError(422, f"param '{param}': expected upload ids (from POST /v1/uploads), got {upload_id!r}"[:300])
        rec = self.store.get_upload(upload_id)
        if rec is None or not self.file(rec).is_file():
            raise ServiceError(422, f"param '{param}': no upload with id '{upload_id}'")
        return rec

    def file(self, rec: UploadRecord) -> Path:
        return self.path_for(rec.id, Path(rec.filename).suffix)

    def materialize(self, ids: list[str], dest: Path) -> list[Path]:
        """Hard-link (or copy) the uploads into ``dest`` under their sanitised, de-duplicated names."""
        dest.mkdir(parents=True, exist_ok=True)
        out = []
        for upload_id in ids:
            rec = self.require(upload_id, "upload")
            target = dest / rec.filename
            n = 2
            while target.exists() or target in out:
                target = dest / f"{Path(rec.filename).stem}-{n}{Path(rec.filename).suffix}"
                n += 1
            try:
                os.link(self.file(rec), target)
            except OSError:  # another filesystem, or links not allowed
                shutil.copyfile(self.file(rec), target)
            out.append(target)
        return out
