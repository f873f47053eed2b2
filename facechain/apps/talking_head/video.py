"""Frames + audio out: an H.264 MP4 (yuv420p, plays everywhere) with the speech muxed in as AAC.

Frames stream into ffmpeg's stdin as they are rendered, so a long clip never sits in memory.
The file is written under a hidden temporary name beside the destination and renamed onto it
with ``os.replace`` only once ffmpeg finished cleanly: an interrupted or failed run leaves no
half-written video, and a user's existing file is replaced only with ``overwrite``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ...atomic import check_destination
from ...errors import FacechainError
from .audio import Audio, ffmpeg_exe

AUDIO_RATE = 48_000  # AAC frames of 1024 samples are 21 ms here: the track ends within a video frame


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class VideoWriter:
    """``with VideoWriter(path, (w, h), fps, audio) as v: v.write(frame)`` → ``path`` appears at the end."""

    def __init__(self, path: Path | str, size: tuple[int, int], fps: float, audio: Audio, *,
                 overwrite: bool = False, crf: int = 18, preset: str = "veryfast"):
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        if self.size[0] % 2 or self.size[1] % 2:
            raise ValueError(f"H.264 in yuv420p needs even frame sides, got {self.size[0]}x{self.size[1]}")
        self.fps = float(fps)
        self.audio = audio
        self.overwrite = overwrite
        self.crf, self.preset = crf, preset
        self.frames = 0
        self._proc: subprocess.Popen | None = None
        self._tmp: Path | None = None
        self._wav: Path | None = None

    def __enter__(self) -> "VideoWriter":
        check_destination(self.path, self.overwrite)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.partial-", suffix=".mp4", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        if self.audio.path is not None:  # the original file, at its own quality
            sound = self.audio.path
        else:
            fd, wav = tempfile.mkstemp(prefix=f".{self.path.stem}.audio-", suffix=".wav", dir=self.path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(self.audio.to_wav_bytes())
            sound = self._wav = Path(wav)
        w, h = self.size
        cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", f"{self.fps:g}", "-i", "pipe:0",
               "-t", f"{self.audio.seconds:.6f}", "-i", str(sound),
               "-map", "0:v:0", "-map", "1:a:0",
               "-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf), "-pix_fmt", "yuv420p",
               "-c:a", "aac", "-b:a", "128k", "-ar", str(AUDIO_RATE),
               "-movflags", "+faststart", "-f", "mp4", str(self._tmp)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def write(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if frame.shape != (self.size[1], self.size[0], 3):
            raise ValueError(f"frame {frame.shape} does not match the video size {self.size}")
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(frame.tobytes())
        except BrokenPipeError:
            raise FacechainError(f"{self.path}: ffmpeg stopped while encoding ({self._stderr()})") from None
        self.frames += 1

    def _stderr(self) -> str:
        if self._proc is None or self._proc.stderr is None:
            return "no details"
        with contextlib.suppress(Exception):
            self._proc.wait(timeout=10)
        text = self._proc.stderr.read().decode("utf-8", "replace").strip()
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return lines[-1][:200] if lines else f"exit code {self._proc.returncode}"

    def __exit__(self, exc_type, exc, tb) -> None:
        proc = self._proc
        try:
            if proc is None:
                return
            if exc_type is not None:
                proc.kill()
                proc.wait()
                return
            assert proc.stdin is not None
            proc.stdin.close()
            rc = proc.wait()
            if rc != 0:
                raise FacechainError(f"{self.path}: ffmpeg failed to write the video ({self._stderr()})")
            os.chmod(self._tmp, 0o666 & ~_umask())  # mkstemp made it private; a video is an ordinary file
            os.replace(self._tmp, self.path)
            self._tmp = None
        finally:
            if proc is not None and proc.stderr is not None:
                proc.stderr.close()
            for leftover in (self._tmp, self._wav):
                if leftover is not None:
                    with contextlib.suppress(FileNotFoundError):
                        leftover.unlink()
