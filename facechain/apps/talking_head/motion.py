"""From speech to motion: per video frame, how open and how wide the mouth is, blinks, brows, head pose.

Why these signals: in speech the jaw opening follows the syllable envelope closely (loud vowels
open the mouth, pauses close it), and the vowel's spectrum tells its shape: a high first formant
(/a/) opens wider, a high second formant (/i/, /e/) spreads the lips, a low one (/u/, /o/) rounds
them. The rest is what makes a face alive without being driven by the words: blinks at human
rates (every 2-6 s, ~0.25 s each, fast close and slower open), brows that lift on stressed
syllables, and a small head motion (slow idle sway plus nods on emphasis).

Everything is a pure function of the audio and the seed: the same input gives the same video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .audio import Audio

GATE_RANGE_DB = 34.0  # loudness below the speech level minus this is silence: mouth at rest
OPEN_GAMMA = 1.3  # >1 keeps quiet consonants small and lets vowels open fully
ATTACK_S = 0.03  # mouth opens quickly ...
RELEASE_S = 0.06  # ... and closes a little slower
F1_BAND = (250.0, 900.0)
VOICE_BAND = (250.0, 4000.0)


@dataclass
class MotionTrack:
    """Per-frame animation parameters (all arrays have one value per video frame).

    ``mouth_open`` and ``blink`` are 0..1; ``mouth_width`` -1 (rounded) .. 1 (spread); ``brow``
    0..1 (raised); ``head`` is (frames, 5): yaw, pitch, roll in degrees, then x, y shift as a
    fraction of the face size.
    """

    fps: float
    mouth_open: np.ndarray
    mouth_width: np.ndarray
    blink: np.ndarray
    brow: np.ndarray
    head: np.ndarray

    def __len__(self) -> int:
        return len(self.mouth_open)

    def frames(self, start: int, stop: int) -> "MotionTrack":
        """A slice of the track (rendering goes chunk by chunk)."""
        s = slice(start, stop)
        return MotionTrack(self.fps, self.mouth_open[s], self.mouth_width[s], self.blink[s], self.brow[s], self.head[s])


def frame_count(audio: Audio, fps: float) -> int:
    """Frames that make a video as long as the audio (within half a frame)."""
    return max(1, int(round(audio.seconds * fps)))


@dataclass
class SpeechFeatures:
    """Per-frame measurements of the audio: loudness (dBFS), low-formant share, spectral centroid (Hz)."""

    loudness_db: np.ndarray
    f1_share: np.ndarray
    centroid_hz: np.ndarray


def speech_features(audio: Audio, fps: float, num_frames: int, chunk_frames: int = 1500) -> SpeechFeatures:
    """Loudness and spectrum in a Hann window of two frame periods centred on each frame.

    Works through the clip ``chunk_frames`` at a time, so hours of audio need little memory.
    """
    sr = audio.sample_rate
    hop = sr / fps
    win = int(2 ** math.ceil(math.log2(2 * hop)))
    window = np.hanning(win).astype(np.float32)
    freqs = np.fft.rfftfreq(win, 1.0 / sr)
    f1 = (freqs >= F1_BAND[0]) & (freqs < F1_BAND[1])
    voice = (freqs >= VOICE_BAND[0]) & (freqs < VOICE_BAND[1])
    padded = np.concatenate([np.zeros(win, np.float32), audio.samples, np.zeros(win, np.float32)])
    out_db, out_f1, out_c = [], [], []
    for start in range(0, num_frames, chunk_frames):
        idx = np.arange(start, min(num_frames, start + chunk_frames))
        centres = ((idx + 0.5) * hop).astype(np.int64) + win  # offset by the front padding
        frames = padded[centres[:, None] - win // 2 + np.arange(win)[None, :]] * window
        rms = np.sqrt(np.mean(frames ** 2, axis=1) / np.mean(window ** 2) + 1e-20)
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        total = power[:, voice].sum(1) + 1e-20
        out_db.append(20 * np.log10(rms + 1e-10))
        out_f1.append(power[:, f1].sum(1) / total)
        out_c.append((power[:, voice] * freqs[voice]).sum(1) / total)
    return SpeechFeatures(np.concatenate(out_db), np.concatenate(out_f1), np.concatenate(out_c))


def _smooth_attack_release(x: np.ndarray, fps: float, attack_s: float, release_s: float) -> np.ndarray:
    up = 1 - math.exp(-1 / (fps * attack_s))
    down = 1 - math.exp(-1 / (fps * release_s))
    y = np.empty_like(x)
    state = 0.0
    for i, v in enumerate(x):
        state += (up if v > state else down) * (v - state)
        y[i] = state
    return y


def _moving_average(x: np.ndarray, n: int) -> np.ndarray:
    if n <= 1 or len(x) == 0:
        return x.copy()
    kernel = np.ones(n) / n
    return np.convolve(np.pad(x, (n // 2, n - 1 - n // 2), mode="edge"), kernel, mode="valid")


def mouth_from_speech(feat: SpeechFeatures, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Mouth opening (0..1) and width (-1..1) per frame from the speech features."""
    db = feat.loudness_db
    audible = db > db.max() - 50.0
    level = float(np.percentile(db[audible], 90)) if audible.any() else float(db.max())
    loud = np.clip((db - (level - GATE_RANGE_DB)) / GATE_RANGE_DB, 0.0, 1.0) ** OPEN_GAMMA
    # Vowel shape: an open vowel (/a/) has much energy near F1; normalise by the clip's own range.
    voiced = loud > 0.05
    f1 = feat.f1_share
    lo, hi = (np.percentile(f1[voiced], [10, 90]) if voiced.sum() >= 5 else (0.0, 1.0))
    openness = np.clip((f1 - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    mouth_open = loud * (0.8 + 0.2 * openness)
    # Width from the centroid of the voice band: /i/ (bright) spreads, /u/ (dark) rounds.
    c = np.log2(np.maximum(feat.centroid_hz, 1.0))
    mid = float(np.median(c[voiced])) if voiced.any() else 10.2
    spread = np.clip((c - mid) / 0.8, -1.0, 1.0) * np.minimum(loud * 2.0, 1.0)
    mouth_open = _smooth_attack_release(mouth_open, fps, ATTACK_S, RELEASE_S)
    spread = _smooth_attack_release(np.abs(spread), fps, ATTACK_S, RELEASE_S) * np.sign(_moving_average(spread, 2))
    peak = max(float(mouth_open.max()), 1e-6)
    return np.clip(mouth_open / peak, 0.0, 1.0), np.clip(spread, -1.0, 1.0)


def blinks(num_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure per frame (0 open, 1 closed): a renewal process with human timing."""
    t = (np.arange(num_frames) + 0.5) / fps
    out = np.zeros(num_frames)
    start = rng.uniform(0.6, 2.5)
    end = num_frames / fps
    while start < end:
        close, hold, opening = rng.uniform(0.06, 0.09), rng.uniform(0.02, 0.06), rng.uniform(0.12, 0.2)
        out = np.maximum(out, _blink_curve(t - start, close, hold, opening))
        if rng.random() < 0.12:  # an occasional double blink
            start += close + hold + opening + rng.uniform(0.05, 0.15)
            continue
        start += max(1.2, rng.gamma(4.0, 0.9))
    return out


def _blink_curve(dt: np.ndarray, close: float, hold: float, opening: float) -> np.ndarray:
    x = np.zeros_like(dt)
    a = (dt >= 0) & (dt < close)
    x[a] = np.sin(0.5 * np.pi * dt[a] / close) ** 2
    x[(dt >= close) & (dt < close + hold)] = 1.0
    c = (dt >= close + hold) & (dt < close + hold + opening)
    x[c] = np.cos(0.5 * np.pi * (dt[c] - close - hold) / opening) ** 2
    return x


def _sway(num_frames: int, fps: float, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """Slow idle motion: three incommensurate sinusoids with random phases."""
    t = np.arange(num_frames) / fps
    freqs = rng.uniform(0.07, 0.45, size=3)
    phases = rng.uniform(0, 2 * np.pi, size=3)
    weights = np.array([1.0, 0.55, 0.3])
    return amplitude * (weights[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])).sum(0) / weights.sum()


def head_and_brows(mouth_open: np.ndarray, fps: float, rng: np.random.Generator,
                   amplitude: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Head pose (yaw, pitch, roll °, x, y shift) and brow lift per frame.

    Emphasis (the mouth opening above its running mean over ~0.8 s) lifts the brows and nods
    the head; the idle sway continues through pauses so the face never freezes.
    """
    n = len(mouth_open)
    slow = _moving_average(mouth_open, max(1, int(0.8 * fps)))
    emphasis = np.clip(mouth_open - slow, 0.0, 1.0)
    emphasis = _smooth_attack_release(emphasis, fps, 0.08, 0.35)
    brow = np.clip(emphasis * 1.8, 0.0, 1.0) * rng.uniform(0.6, 1.0)
    talking = _moving_average(mouth_open, max(1, int(0.5 * fps)))
    yaw = _sway(n, fps, rng, 2.6) + 1.2 * _sway(n, fps, rng, 1.0) * talking
    pitch = _sway(n, fps, rng, 1.5) + 2.2 * emphasis
    roll = _sway(n, fps, rng, 1.4)
    x = _sway(n, fps, rng, 0.008)
    y = _sway(n, fps, rng, 0.006) + 0.006 * emphasis
    head = np.stack([yaw, pitch, roll, x, y], axis=1) * amplitude
    return head, brow


def motion_from_audio(audio: Audio, fps: float, seed: int = 0, head_motion: float = 1.0,
                      num_frames: int | None = None) -> MotionTrack:
    """The whole animation of a clip: speech-driven mouth, natural blinks, brows and head motion."""
    n = frame_count(audio, fps) if num_frames is None else num_frames
    rng = np.random.default_rng(seed)
    feat = speech_features(audio, fps, n)
    mouth_open, mouth_width = mouth_from_speech(feat, fps)
    blink = blinks(n, fps, rng)
    head, brow = head_and_brows(mouth_open, fps, rng, head_motion)
    return MotionTrack(float(fps), mouth_open, mouth_width, blink, brow, head)
