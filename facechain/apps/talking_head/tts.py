"""``--text``: speech from text, offline with espeak-ng when it is installed, else Edge TTS when online.

The paper used Microsoft Edge's online voices; they sound far better than espeak-ng's formant
synthesis, but need the network and the ``edge-tts`` package. espeak-ng (``apt-get install
espeak-ng``, ``brew install espeak-ng``) needs neither, so it goes first and keeps the verb
usable offline. Without either, ``--text`` is one line saying how to get one (or to pass
``--audio``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

from ... import progress
from ...errors import FacechainError, InputError

EDGE_VOICE = "en-US-AriaNeural"
MAX_CHARS = 20_000


def _offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in ("FACECHAIN_OFFLINE", "HF_HUB_OFFLINE"))


def espeak_binary() -> str | None:
    return shutil.which("espeak-ng")


def available_engines() -> list[str]:
    """Engines usable right now, best first for an offline default."""
    engines = []
    if espeak_binary():
        engines.append("espeak-ng")
    if not _offline():
        try:
            import edge_tts  # noqa: F401

            engines.append("edge-tts")
        except ImportError:
            pass
    return engines


def synthesize(text: str, folder: Path | str, *, voice: str | None = None, engine: str | None = None) -> Path:
    """Speak ``text`` into an audio file in ``folder``; returns its path."""
    text = (text or "").strip()
    if not text:
        raise InputError("--text", "the text is empty")
    if len(text) > MAX_CHARS:
        raise InputError("--text", f"the text is too long ({len(text)} characters; at most {MAX_CHARS})")
    engines = available_engines()
    if engine is not None:
        if engine not in ("espeak-ng", "edge-tts"):
            raise FacechainError(f"unknown text-to-speech engine '{engine}' (espeak-ng, edge-tts)")
        if engine not in engines:
            engines = []
        else:
            engines = [engine]
    if not engines:
        why = "offline mode" if _offline() else "edge-tts is not installed"
        raise FacechainError("--text needs a text-to-speech engine: install espeak-ng (apt-get install espeak-ng) "
                             f"or pip install edge-tts and be online ({why}); or pass --audio FILE")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    progress.say(f"synthesising speech with {engines[0]}")
    if engines[0] == "espeak-ng":
        return _espeak(text, folder / "speech.wav", voice)
    return _edge(text, folder / "speech.mp3", voice)


def _espeak(text: str, out: Path, voice: str | None) -> Path:
    script = out.with_suffix(".txt")
    script.write_text(text, encoding="utf-8")
    cmd = [espeak_binary() or "espeak-ng", "-w", str(out), "-f", str(script)]
    if voice:
        cmd[1:1] = ["-v", voice]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
        lines = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
        raise FacechainError(f"espeak-ng failed: {lines[-1][:160] if lines else f'exit code {proc.returncode}'}")
    return out


def _edge(text: str, out: Path, voice: str | None) -> Path:
    import edge_tts

    async def run() -> None:
        await edge_tts.Communicate(text, voice or EDGE_VOICE).save(str(out))

    try:
        asyncio.run(run())
    except Exception as e:  # network, service or voice errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FacechainError(f"Edge TTS failed ({first[:160]}); check the network, or pass --audio FILE") from None
    if not out.is_file() or out.stat().st_size == 0:
        raise FacechainError("Edge TTS returned no audio; pass --audio FILE instead")
    return out
