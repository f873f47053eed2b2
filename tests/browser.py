"""A real browser for the UI tests: Debian's headless Chromium driven by Playwright's Python API.

Playwright's own browser download cannot work on our machines (no network beyond the package
registries), so the tests use the system ``chromium`` through ``executable_path``. When it is
missing and we run as root on Debian/Ubuntu, it is installed with apt-get (once per machine);
only if that is impossible does the caller skip, with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_INSTALL_TIMEOUT_S = 900


def find_chromium() -> str | None:
    explicit = os.environ.get("FACECHAIN_TEST_CHROMIUM")
    if explicit and Path(explicit).is_file():
        return explicit
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_chromium() -> tuple[str | None, str]:
    """``(path, "")`` for a usable Chromium, or ``(None, why not)``; installs Debian's package as root."""
    found = find_chromium()
    if found:
        return found, ""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None, "chromium is not installed and we are not root (apt-get install -y chromium)"
    if shutil.which("apt-get") is None:
        return None, "chromium is not installed and there is no apt-get to install it"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log = []
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"'{' '.join(cmd)}' failed: {e}"
        log.append(done.stdout[-500:] + done.stderr[-500:])
        if done.returncode != 0:
            return None, f"'{' '.join(cmd)}' exited {done.returncode}: {' '.join(log[-1].split())[-300:]}"
    found = find_chromium()
    return (found, "") if found else (None, "apt-get installed chromium but no chromium binary was found")


def launch(playwright, executable: str):
    """Headless Chromium; no sandbox (root in a container has no user namespaces for it)."""
    return playwright.chromium.launch(executable_path=executable, headless=True,
                                      args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
