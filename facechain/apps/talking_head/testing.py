"""Test kit for talking heads: a speech-like clip with a known loudness envelope.

Real recordings would make the tests depend on files and on what a speaker happened to do; a
source-filter vowel synthesiser gives speech-shaped sound (a glottal pulse train through three
formant resonators, per vowel) whose envelope, pauses and vowels are known exactly, so a test
can compare what the video's mouth does with what the audio says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

# (F1, F2, F3) in Hz, adult male averages (Peterson & Barney).
VOWELS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010),
          "o": (570, 840, 2410), "u": (300, 870, 2240)}


@dataclass
class SyntheticSpeech:
    """The clip and its ground truth: amplitude envelope per sample and the silent spans."""

    samples: np.ndarray  # float32 mono
    sample_rate: int
    envelope: np.ndarray  # (N,) amplitude the vowels were scaled by (0 in pauses)
    silences: list[tuple[float, float]]  # (start, end) seconds with nothing at all
    syllables: list[tuple[float, float, str, float]]  # (start, end, vowel, peak)

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    def envelope_per_frame(self, fps: float, num_frames: int) -> np.ndarray:
        """The mean envelope over each video frame's time span."""
        edges = np.round(np.arange(num_frames + 1) * self.sample_rate / fps).astype(int)
        edges = np.clip(edges, 0, len(self.envelope))
        csum = np.concatenate([[0.0], np.cumsum(self.envelope, dtype=np.float64)])
        return (csum[edges[1:]] - csum[edges[:-1]]) / np.maximum(edges[1:] - edges[:-1], 1)


def _resonator(x: np.ndarray, freq: float, bandwidth: float, sr: int) -> np.ndarray:
    r = np.exp(-np.pi * bandwidth / sr)
    theta = 2 * np.pi * freq / sr
    return lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], x)


def vowel(name: str, seconds: float, sr: int, f0: float, rng: np.random.Generator) -> np.ndarray:
    """A steady vowel at unit RMS: glottal pulses with slight jitter through three formants."""
    n = int(round(seconds * sr))
    period = sr / f0
    pulses = np.zeros(n)
    t = rng.uniform(0, period)
    while t < n:
        pulses[int(t)] = 1.0
        t += period * (1 + rng.normal(0, 0.01))
    source = lfilter([1.0], [1.0, -0.97], pulses)  # a -12 dB/octave-ish glottal spectrum
    out = source
    for freq, bw in zip(VOWELS[name], (80.0, 100.0, 140.0)):
        out = _resonator(out, freq, bw, sr)
    out = out - out.mean()
    return out / (np.sqrt(np.mean(out ** 2)) + 1e-12)


def synthetic_speech(pattern: str = "ba-da | gi-bo-da | mu-e | da-ba-gi", *, sample_rate: int = 16_000,
                     syllable_s: float = 0.26, pause_s: float = 0.45, lead_s: float = 0.35, level: float = 0.25,
                     seed: int = 0) -> SyntheticSpeech:
    """Words of syllables (``-``) separated by pauses (``|``); each syllable's vowel is its last letter.

    Every syllable has a raised-cosine envelope with its own peak (0.35-1.0 of ``level``); inside a
    word, neighbouring syllables overlap in their tails (no silence), between words there is a
    pause of pure silence. The clip starts and ends with ``lead_s`` of silence.
    """
    rng = np.random.default_rng(seed)
    sr = sample_rate
    pieces: list[tuple[float, float, str, float]] = []
    silences: list[tuple[float, float]] = []
    t = lead_s
    silences.append((0.0, lead_s))
    words = [w.strip() for w in pattern.split("|") if w.strip()]
    for wi, word in enumerate(words):
        for syl in word.split("-"):
            dur = syllable_s * rng.uniform(0.8, 1.25)
            pieces.append((t, t + dur, syl.strip()[-1], float(rng.uniform(0.35, 1.0))))
            t += dur * 0.92  # a slight overlap: syllables of a word run into each other
        t += dur * 0.08
        gap = pause_s * rng.uniform(0.85, 1.3) if wi < len(words) - 1 else lead_s
        silences.append((t, t + gap))
        t += gap
    n = int(round(t * sr))
    samples = np.zeros(n)
    envelope = np.zeros(n)
    for start, end, v, peak in pieces:
        a, b = int(round(start * sr)), min(n, int(round(end * sr)))
        m = b - a
        env = peak * level * np.sin(np.pi * (np.arange(m) + 0.5) / m) ** 2  # raised cosine
        samples[a:b] += env * vowel(v, m / sr, sr, f0=rng.uniform(105, 135), rng=rng)
        envelope[a:b] += env
    return SyntheticSpeech(samples.astype(np.float32), sr, envelope, silences, pieces)
