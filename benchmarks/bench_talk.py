"""Seconds of compute per second of video for ``facechain talk`` (offline backend), per stage, at 256 and 512 px.

Run (one heavy job at a time on a shared machine)::

    flock /tmp/facechain-heavy.lock python benchmarks/bench_talk.py [--seconds 10] [--sizes 256 512]

Input: the Luciano portrait from ../shared/faces and a synthesised speech clip (vowels and
pauses, :mod:`facechain.apps.talking_head.testing`) of ``--seconds`` length. Stages, each timed
alone: ``decode`` (ffmpeg reads the WAV), ``face mesh`` (detector + 468-point mesh, once per
video), ``motion`` (speech features, blinks, head motion), ``render`` (mesh warp + painted mouth
per frame), ``encode`` (x264 + AAC of the rendered frames); ``talk()`` is the whole verb end to
end (encoding overlaps rendering there, so it is less than the sum). Each figure is shown as
wall time and as CPU time (ours + ffmpeg's); on a busy machine the CPU column is the cost.
OpenCV runs on one thread; ffmpeg uses its own threads.
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

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from facechain.apps.talking_head import audio as audio_mod  # noqa: E402
from facechain.apps.talking_head.animate import FramePose, build_rig, pose_points  # noqa: E402
from facechain.apps.talking_head.api import talk  # noqa: E402
from facechain.apps.talking_head.face_mesh import get_face_mesh_model  # noqa: E402
from facechain.apps.talking_head.motion import motion_from_audio  # noqa: E402
from facechain.apps.talking_head.render import FrameRenderer  # noqa: E402
from facechain.apps.talking_head.testing import synthetic_speech  # noqa: E402
from facechain.apps.talking_head.video import VideoWriter  # noqa: E402
from facechain.image_io import load_image  # noqa: E402

FACES = Path(os.environ.get("FACECHAIN_TEST_FACES", REPO.parent / "shared" / "faces"))
PORTRAIT = FACES / "codait_luciano" / "Luciano.png"
FPS = 25


def clip(seconds: float):
    words = max(1, int(seconds / 1.1))
    pattern = " | ".join(["ba-di-gu", "mo-da", "e-bi-da", "ku-ma"][i % 4] for i in range(words))
    return synthetic_speech(pattern, seed=0)


class Clock:
    """Wall time and CPU time (this process + finished child processes, e.g. ffmpeg) of a stage.

    On a shared machine wall time includes waiting for the CPU; CPU time is what the work costs.
    """

    def __init__(self) -> None:
        self.times: dict[str, tuple[float, float]] = {}

    def start(self) -> None:
        t = os.times()
        self._wall, self._cpu = time.perf_counter(), t.user + t.system + t.children_user + t.children_system

    def stop(self, stage: str) -> None:
        t = os.times()
        self.times[stage] = (time.perf_counter() - self._wall, t.user + t.system + t.children_user + t.children_system - self._cpu)


def bench_size(size: int, wav: Path, work: Path) -> dict[str, tuple[float, float]]:
    clock = Clock()
    clock.start()
    speech = audio_mod.load_audio(wav)
    clock.stop("decode")
    image = cv2.resize(load_image(PORTRAIT), (size, size), interpolation=cv2.INTER_AREA)
    model = get_face_mesh_model()
    model.faces(image)  # warm-up (interpreters allocate on first call)
    clock.start()
    face = model.faces(image)[0]
    clock.stop("face mesh")
    clock.start()
    track = motion_from_audio(speech, FPS, seed=0)
    clock.stop("motion")
    clock.start()
    rig = build_rig(face, (size, size))
    renderer = FrameRenderer(image, rig)
    frames = []
    for i in range(len(track)):
        pose = FramePose(float(track.mouth_open[i]), float(track.mouth_width[i]), float(track.blink[i]),
                         float(track.brow[i]), tuple(float(v) for v in track.head[i]))
        frames.append(renderer.render(pose_points(rig, pose)))
    clock.stop("render")
    clock.start()
    with VideoWriter(work / f"encode{size}.mp4", (size, size), FPS, speech, overwrite=True) as video:
        for f in frames:
            video.write(f)
    clock.stop("encode")
    clock.start()
    talk(PORTRAIT, audio=wav, output=work / f"talk{size}.mp4", size=size, seed=0, overwrite=True, quiet=True)
    clock.stop("talk() end to end")
    return clock.times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the speech clip (default 10)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    args = ap.parse_args()
    os.environ.setdefault("FACECHAIN_OFFLINE", "1")
    cv2.setNumThreads(1)
    speech = clip(args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wav = work / "speech.wav"
        wav.write_bytes(audio_mod.from_array(speech.samples, speech.sample_rate).to_wav_bytes())
        results = {size: bench_size(size, wav, work) for size in args.sizes}
    video_s = speech.seconds
    stages = list(next(iter(results.values())))
    print(f"facechain talk, offline backend: {video_s:.1f} s of speech, {FPS} fps, {round(video_s * FPS)} frames; "
          "seconds of compute per second of video")
    print(f"{'stage':<20}" + "".join(f"{f'{s} px wall':>14}{f'{s} px cpu':>13}" for s in args.sizes))
    for stage in stages:
        print(f"{stage:<20}" + "".join(f"{results[s][stage][0] / video_s:>14.3f}{results[s][stage][1] / video_s:>13.3f}"
                                       for s in args.sizes))
    frames = video_s * FPS
    print(f"{'render ms/frame':<20}" + "".join(f"{1000 * results[s]['render'][0] / frames:>14.1f}"
                                               f"{1000 * results[s]['render'][1] / frames:>13.1f}" for s in args.sizes))


if __name__ == "__main__":
    main()
