"""Speech in: any WAV/MP3/M4A/OGG/FLAC file decoded to mono float PCM by a real ffmpeg.

The ffmpeg binary comes from the ``imageio-ffmpeg`` wheel (the ``talk`` extra), so decoding works
the same on every platform without a system install; ``$FACECHAIN_FFMPEG`` may point at another
binary. Everything a user can get wrong with an audio file ends as a one-line
:class:`~facechain.errors.InputError` naming the file: missing, not audio, empty, silent, too long.
"""

from __future__ import annotations

import io
import os
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import FacechainError, InputError

SAMPLE_RATE = 16_000  # what speech analysis needs; the video's audio track is encoded from this
DEFAULT_MAX_SECONDS = 600.0
SILENCE_PEAK = 10 ** (-50 / 20)  # a clip whose loudest sample is below -50 dBFS holds no speech
INSTALL_HINT = "pip install 'facechain[talk]'"


def ffmpeg_exe() -> str:
    """The ffmpeg binary to run; one line naming the extra when there is none."""
    custom = os.environ.get("FACECHAIN_FFMPEG")
    if custom:
        if not Path(custom).is_file():
            raise FacechainError(f"FACECHAIN_FFMPEG={custom}: no such file")
        return custom
    try:
        import imageio_ffmpeg
    except ImportError:
        raise FacechainError(f"talking heads need ffmpeg from the optional extra: {INSTALL_HINT}") from None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:  # a platform without a bundled binary
        raise FacechainError(f"no ffmpeg binary for this platform ({e}); set FACECHAIN_FFMPEG to one") from None


@dataclass
class Audio:
    """Mono PCM in [-1, 1] at ``sample_rate``; ``source`` names where it came from (for errors)."""

    samples: np.ndarray  # float32 (N,)
    sample_rate: int
    source: str
    path: Path | None = None  # the file it was decoded from: the video muxes that, at full quality

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def peak(self) -> float:
        return float(np.max(np.abs(self.samples))) if len(self.samples) else 0.0

    def to_wav_bytes(self) -> bytes:
        """16-bit PCM WAV (what the muxer reads)."""
        pcm = np.clip(np.round(self.samples * 32767.0), -32768, 32767).astype("<i2")
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(pcm.tobytes())
        return buf.getvalue()


def decode(path: Path | str, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> Audio:
    """Decode any audio file ffmpeg reads into mono float32 PCM (no checks on its content)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file")
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path), "-vn", "-map", "0:a:0",
           "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-acodec", "pcm_f32le"]
    if max_seconds is not None:  # read one second past the limit: enough to tell it is too long
        cmd += ["-t", f"{max_seconds + 1.0:.3f}"]
    proc = subprocess.run([*cmd, "pipe:1"], capture_output=True)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        why = lines[-1] if lines else f"ffmpeg exited with {proc.returncode}"
        if "matches no streams" in why or "does not contain any stream" in why:
            why = "has no audio track"
        elif "Invalid data found" in why or "could not find codec" in why.lower():
            why = "not an audio file ffmpeg can read"
        raise InputError(path, f"cannot decode audio ({why[:160]})")
    samples = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
    if samples.size == 0:
        raise InputError(path, "no audio samples (empty or unreadable audio track)")
    return Audio(np.clip(samples, -1.0, 1.0), sample_rate, str(path), path)


def check_speech(audio: Audio, max_seconds: float = DEFAULT_MAX_SECONDS, min_seconds: float = 0.1) -> Audio:
    """Refuse audio that cannot drive a talking head: too short, too long, or silent."""
    if audio.seconds > max_seconds:
        raise InputError(audio.source, f"audio is longer than the limit ({audio.seconds:.1f} s > {max_seconds:g} s; "
                                       "raise max_seconds / --max-seconds or cut the clip)")
    if audio.seconds < min_seconds:
        raise InputError(audio.source, f"audio is too short ({audio.seconds * 1000:.0f} ms)")
    if audio.peak < SILENCE_PEAK:
        peak_db = 20 * np.log10(max(audio.peak, 1e-12))
        raise InputError(audio.source, f"audio is silent (peak {peak_db:.0f} dBFS)")
    return audio


def load_audio(path: Path | str, *, max_seconds: float = DEFAULT_MAX_SECONDS, sample_rate: int = SAMPLE_RATE) -> Audio:
    """Decode ``path`` and check that it is usable speech (see :func:`check_speech`)."""
    return check_speech(decode(path, sample_rate, max_seconds=max_seconds), max_seconds)


def from_array(samples: np.ndarray, sample_rate: int, source: str = "audio") -> Audio:
    """Wrap PCM already in memory (mono or (N, channels)), resampled to :data:`SAMPLE_RATE`."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sample_rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        g = np.gcd(int(sample_rate), SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, int(sample_rate) // g).astype(np.float32)
    return Audio(np.clip(x, -1.0, 1.0), SAMPLE_RATE, source)
