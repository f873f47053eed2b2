"""Shared fixtures: real face photos from ../shared/faces, an isolated FACECHAIN_HOME, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

# Tiny models gain nothing from intra-op threads, and OpenMP threads that spin while a sibling
# (another test process, or anything else on a 2-core machine) holds the CPU made tiny-model
# steps up to 100x slower. One thread per test process; the README runs two (pytest -n 2).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
FACES = Path(os.environ.get("FACECHAIN_TEST_FACES", REPO.parent / "shared" / "faces"))


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    if not FACES.is_dir():
        pytest.fail(f"test photos not found at {FACES} (set FACECHAIN_TEST_FACES)")
    return FACES


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own FACECHAIN_HOME and offline mode: no test touches the network or ~/.cache."""
    home = tmp_path_factory.mktemp("fchome")
    monkeypatch.setenv("FACECHAIN_HOME", str(home))
    monkeypatch.setenv("FACECHAIN_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory) -> Path:
    """A tiny SD 1.5-architecture diffusers folder on disk (random weights)."""
    from facechain.testing.tiny import save_tiny_sd

    return save_tiny_sd(tmp_path_factory.mktemp("tiny") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory) -> Path:
    """A tiny SDXL-architecture diffusers folder on disk (two text encoders, random weights)."""
    from facechain.testing.tiny import save_tiny_sdxl

    return save_tiny_sdxl(tmp_path_factory.mktemp("tinyxl") / "tiny-sdxl")


@pytest.fixture(scope="session")
def tiny_controlnet_dir(tmp_path_factory) -> Path:
    from facechain.testing.tiny import save_tiny_controlnet

    return save_tiny_controlnet(tmp_path_factory.mktemp("tinycn") / "tiny-controlnet")


@pytest.fixture(autouse=True)
def _reset_accelerate():
    """accelerate's AcceleratorState is a process singleton; reset it between tests."""
    yield
    try:
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(True)
    except Exception:
        pass
