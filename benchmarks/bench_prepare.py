"""Seconds per photo for each step of ``facechain prepare`` on this CPU.

Run (one heavy job at a time on a shared machine)::

    flock /tmp/facechain-heavy.lock python benchmarks/bench_prepare.py

Default input: the Obama photos of ../shared/faces plus three copies turned by 90, 180 and
25 degrees (8 photos, one person, as a user would give them). ``--photos`` takes other files or
folders. Every step's time is summed over photos by the pipeline itself (``result.timings``) and
divided by the number of input photos; ``total`` is the wall time of the whole ``prepare`` call.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from facechain.image_io import list_images  # noqa: E402
from facechain.perception import get_analyzer  # noqa: E402
from facechain.preprocess.pipeline import prepare  # noqa: E402

FACES = Path(os.environ.get("FACECHAIN_TEST_FACES", REPO.parent / "shared" / "faces"))
STEPS = ["load", "orientation", "detection", "alignment", "quality", "identity", "segmentation", "retouch", "verify", "tagging", "template", "selection"]


def default_photos(folder: Path) -> list[Path]:
    obama = sorted((FACES / "obama").iterdir())
    photos = [folder / p.name for p in obama]
    for p in obama:
        (folder / p.name).write_bytes(p.read_bytes())
    for name, deg in (("obama_2012_official_portrait.jpg", 90), ("obama_2009_congress_address.jpg", 180), ("obama_small.jpg", 25)):
        dst = folder / f"turned{deg}_{name}"
        Image.open(FACES / "obama" / name).convert("RGB").rotate(-deg, expand=True, resample=Image.BICUBIC).save(dst, quality=92)
        photos.append(dst)
    return photos


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", nargs="*", help="files/folders (default: Obama photos + 3 turned copies)")
    ap.add_argument("--no-retouch", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("FACECHAIN_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.photos:
            photos = list_images(args.photos)
        else:
            (tmp / "in").mkdir()
            photos = default_photos(tmp / "in")
        analyzer = get_analyzer("hog")
        t0 = time.perf_counter()
        analyzer.landmark_model, analyzer.embedder, analyzer.attribute_model  # load models outside the timing
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = prepare(photos, tmp / "out", quiet=True, analyzer=analyzer, retouch=False if args.no_retouch else None)
        wall = time.perf_counter() - t0
    n = len(photos)
    load_avg = os.getloadavg()[0]
    print(f"facechain prepare: {n} photos ({len(result.accepted)} accepted, {len(result.rejected)} rejected), "
          f"detector hog, {os.cpu_count()} CPUs (load average {load_avg:.1f}); model loading {load_s:.2f} s (once)")
    print(f"{'step':<14}{'total s':>10}{'s / photo':>12}")
    for step in STEPS + sorted(set(result.timings) - set(STEPS)):
        if step in result.timings:
            s = result.timings[step]
            print(f"{step:<14}{s:>10.2f}{s / n:>12.3f}")
    print(f"{'total (wall)':<14}{wall:>10.2f}{wall / n:>12.3f}")


if __name__ == "__main__":
    main()
