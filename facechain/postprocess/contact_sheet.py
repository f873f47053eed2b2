"""A contact sheet: every portrait as a captioned thumbnail on one JPEG, to compare them at a glance."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def make_contact_sheet(images: Sequence[np.ndarray | Image.Image], captions: Sequence[str] | None = None,
                       thumb: int = 256, columns: int | None = None, flagged: Sequence[bool] | None = None) -> Image.Image:
    """Thumbnails (longest side ``thumb``) in a grid with a caption line under each; flagged ones framed red."""
    if not images:
        raise ValueError("no images for a contact sheet")
    pils = [im if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im, dtype=np.uint8)) for im in images]
    thumb = max(64, min(thumb, max(max(p.size) for p in pils)))  # small images are not blown up
    n = len(pils)
    cols = columns or min(n, max(1, math.ceil(math.sqrt(n))))
    rows = math.ceil(n / cols)
    caption_h = 18 if captions else 0
    pad = 6
    cell_w, cell_h = thumb + 2 * pad, thumb + caption_h + 2 * pad
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, pil in enumerate(pils):
        pil = pil.convert("RGB")
        pil.thumbnail((thumb, thumb), Image.Resampling.LANCZOS)
        r, c = divmod(i, cols)
        x0, y0 = c * cell_w + pad, r * cell_h + pad
        ox, oy = x0 + (thumb - pil.width) // 2, y0 + (thumb - pil.height) // 2
        sheet.paste(pil, (ox, oy))
        if flagged is not None and flagged[i]:
            draw.rectangle([ox - 2, oy - 2, ox + pil.width + 1, oy + pil.height + 1], outline=(220, 40, 40), width=2)
        if captions:
            draw.text((x0, y0 + thumb + 3), str(captions[i])[: max(8, thumb // 6)], fill=(230, 230, 230), font=font)
    return sheet
