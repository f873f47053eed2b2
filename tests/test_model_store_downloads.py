"""Model store downloads against fake hubs: exactly the component files, and a completion marker.

The hubs' ``snapshot_download`` functions are replaced by a fake that lays out files of a made-up
repository listing (what the real repositories hold: pickles, fp16 and non-EMA variants, single-file
checkpoints) under ``local_dir``, filtered by ``allow_patterns`` the way both hubs filter (fnmatch).
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest

from facechain.models import layouts
from facechain.models.api import download_models, model_status
from facechain.models.registry import MODELS
from facechain.models.store import MARKER, ModelStore
from tests.cli_helpers import run_cli

# What stable-diffusion-v1-5/stable-diffusion-v1-5 holds (sizes in MB, roughly): ~20 GB in all.
SD15_REPO = {
    "model_index.json": 0, "README.md": 0, "v1-inference.yaml": 0,
    "v1-5-pruned.ckpt": 7703, "v1-5-pruned.safetensors": 7703, "v1-5-pruned-emaonly.ckpt": 4265,
    "v1-5-pruned-emaonly.safetensors": 4265, "v1-5-pruned-emaonly.fp16.safetensors": 2132,
    "feature_extractor/preprocessor_config.json": 0,
    "safety_checker/config.json": 0, "safety_checker/model.safetensors": 1216, "safety_checker/pytorch_model.bin": 1216,
    "safety_checker/model.fp16.safetensors": 608,
    "scheduler/scheduler_config.json": 0,
    "text_encoder/config.json": 0, "text_encoder/model.safetensors": 492, "text_encoder/pytorch_model.bin": 492,
    "text_encoder/model.fp16.safetensors": 246,
    "tokenizer/merges.txt": 0, "tokenizer/special_tokens_map.json": 0, "tokenizer/tokenizer_config.json": 0,
    "tokenizer/vocab.json": 0,
    "unet/config.json": 0, "unet/diffusion_pytorch_model.safetensors": 3438, "unet/diffusion_pytorch_model.bin": 3438,
    "unet/diffusion_pytorch_model.fp16.safetensors": 1719, "unet/diffusion_pytorch_model.non_ema.safetensors": 3438,
    "unet/diffusion_pytorch_model.non_ema.bin": 3438,
    "vae/config.json": 0, "vae/diffusion_pytorch_model.safetensors": 335, "vae/diffusion_pytorch_model.bin": 335,
    "vae/diffusion_pytorch_model.fp16.safetensors": 167,
}
SD15_NEEDED = {
    "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json", "text_encoder/model.safetensors",
    "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
    "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
}
CONTROLNET_REPO = {"config.json": 0, "diffusion_pytorch_model.safetensors": 1445, "diffusion_pytorch_model.bin": 1445,
                   "diffusion_pytorch_model.fp16.safetensors": 722, "diffusion_pytorch_model.fp16.bin": 722, "README.md": 0}


def _content(repo_id: str, path: str) -> bytes:
    if path.endswith("model_index.json"):
        return json.dumps({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
                           "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
                           "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"]}).encode()
    if path.endswith("config.json"):
        return json.dumps({"_class_name": "ControlNetModel" if "control" in repo_id or "-cn" in repo_id else "X"}).encode()
    return b"weights of " + path.encode()


class FakeHub:
    """Records every snapshot_download call; writes the repository files the patterns select."""

    def __init__(self, repos: dict[str, dict[str, int]], fail_after: int | None = None):
        self.repos = repos
        self.calls: list[dict] = []
        self.fail_after = fail_after  # raise after writing this many files (an interrupted download)

    def __call__(self, repo_id=None, *args, revision=None, local_dir=None, allow_patterns=None, **kwargs):
        self.calls.append(dict(repo_id=repo_id, revision=revision, allow_patterns=allow_patterns, kwargs=kwargs))
        files = [f for f in self.repos[repo_id] if allow_patterns is None or any(fnmatch.fnmatch(f, p) for p in allow_patterns)]
        for i, f in enumerate(sorted(files)):
            if self.fail_after is not None and i >= self.fail_after:
                raise ConnectionError("connection reset by peer")
            target = Path(local_dir) / f
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_content(repo_id, f))
        return str(local_dir)

    def downloaded_mb(self, repo_id: str, folder: Path) -> int:
        return sum(mb for f, mb in self.repos[repo_id].items() if (folder / f).exists())


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("FACECHAIN_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def patch_hf(monkeypatch, hub: FakeHub) -> FakeHub:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    return hub


def patch_ms(monkeypatch, hub: FakeHub) -> FakeHub:
    modelscope = pytest.importorskip("modelscope")
    monkeypatch.setattr(modelscope, "snapshot_download", hub, raising=False)
    return hub


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MARKER}


# --- exactly the component files ---------------------------------------------------------------

def test_hf_pipeline_downloads_only_the_component_files(tmp_path, monkeypatch, online):
    hub = patch_hf(monkeypatch, FakeHub({"stable-diffusion-v1-5/stable-diffusion-v1-5": SD15_REPO}))
    store = ModelStore(cache_dir=tmp_path, offline=False)
    [(name, path)] = download_models(["base-sd15"], store=store)
    assert name == "base-sd15"
    assert [c["allow_patterns"] for c in hub.calls] == [list(layouts.PIPELINE_FILES)]
    assert files_under(path) == SD15_NEEDED  # no pickles, no fp16 / non-EMA, no single-file checkpoints
    mb = hub.downloaded_mb("stable-diffusion-v1-5/stable-diffusion-v1-5", path)
    assert 4000 < mb < 5000 and sum(SD15_REPO.values()) > 40000
    assert (path / MARKER).is_file() and store.is_present("base-sd15" and MODELS["base-sd15"].reference)


def test_modelscope_pipeline_in_a_subfolder_and_revision(tmp_path, monkeypatch, online):
    repo = {f"film/film/{f}": mb for f, mb in SD15_REPO.items()}
    repo.update({f"film/other/{f}": mb for f, mb in SD15_REPO.items()})
    hub = patch_ms(monkeypatch, FakeHub({"ly261666/cv_portrait_model": repo}))
    store = ModelStore(cache_dir=tmp_path, offline=False)
    [(_, path)] = download_models(["base-sd15-portrait"], store=store)
    [call] = hub.calls
    assert call["revision"] == "v2.0"
    assert call["allow_patterns"] == [f"film/film/{p}" for p in layouts.PIPELINE_FILES]
    assert path == store.local_dir(MODELS["base-sd15-portrait"].reference) / "film/film"
    assert files_under(path) == SD15_NEEDED
    assert not (path.parent / "other").exists()


def test_controlnet_and_style_lora_fetch_only_their_files(tmp_path, monkeypatch, online):
    hf = patch_hf(monkeypatch, FakeHub({"lllyasviel/control_v11p_sd15_openpose": CONTROLNET_REPO}))
    ms = patch_ms(monkeypatch, FakeHub({"Licht000/witch": {"Moon Witch.safetensors": 144, "other.safetensors": 144,
                                                            "Moon Witch.ckpt": 144}}))
    store = ModelStore(cache_dir=tmp_path, offline=False)
    [(_, cn)] = download_models(["openpose-controlnet"], store=store)
    assert hf.calls[0]["allow_patterns"] == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert files_under(cn) == {"config.json", "diffusion_pytorch_model.safetensors"}
    # a raw reference (what a hint prints for a user's own style) downloads just the named file
    ref = "ms:Licht000/witch@v1.0.0#Moon Witch.safetensors"
    [(_, lora)] = download_models([ref], store=store)
    assert ms.calls[0]["allow_patterns"] == ["Moon Witch.safetensors"] and ms.calls[0]["revision"] == "v1.0.0"
    assert lora.name == "Moon Witch.safetensors" and files_under(lora.parent) == {"Moon Witch.safetensors"}
    assert store.is_present(ref) and not store.is_present("ms:Licht000/witch@v1.0.0#other.safetensors")


def test_unknown_repository_layout_is_detected_from_its_config(tmp_path, monkeypatch, online):
    hub = patch_hf(monkeypatch, FakeHub({"someone/my-sd15": SD15_REPO, "someone/my-cn": CONTROLNET_REPO}))
    store = ModelStore(cache_dir=tmp_path, offline=False)
    path = store.resolve("someone/my-sd15")
    assert [c["allow_patterns"] for c in hub.calls] == [["model_index.json", "config.json"], list(layouts.PIPELINE_FILES)]
    assert files_under(path) == SD15_NEEDED
    assert store.is_present("someone/my-sd15") and store.is_present("someone/my-sd15", kind="pipeline")
    store.resolve("someone/my-cn")
    assert hub.calls[-1]["allow_patterns"] == list(layouts.CONTROLNET_FILES)
    n = len(hub.calls)
    store.resolve("someone/my-sd15")  # complete: no hub call at all
    assert len(hub.calls) == n


def test_component_without_safetensors_falls_back_to_its_pickle_only(tmp_path, monkeypatch, online, caplog):
    repo = {f: mb for f, mb in SD15_REPO.items() if f != "unet/diffusion_pytorch_model.safetensors"}
    hub = patch_hf(monkeypatch, FakeHub({"old/sd15": repo}))
    path = ModelStore(cache_dir=tmp_path, offline=False).resolve("old/sd15", kind="pipeline")
    assert hub.calls[-1]["allow_patterns"] == ["unet/diffusion_pytorch_model.bin"]
    assert files_under(path) == (SD15_NEEDED - {"unet/diffusion_pytorch_model.safetensors"}) | {"unet/diffusion_pytorch_model.bin"}
    assert "no .safetensors" in caplog.text


# --- a half-finished download never counts ----------------------------------------------------------

@pytest.mark.parametrize("hub_name", ["hf", "modelscope"])
def test_interrupted_download_is_reported_missing(tmp_path, monkeypatch, online, isolated_home, hub_name):
    name = "openpose-controlnet" if hub_name == "hf" else "base-sd15-portrait"
    repo_id, repo = (("lllyasviel/control_v11p_sd15_openpose", CONTROLNET_REPO) if hub_name == "hf"
                     else ("ly261666/cv_portrait_model", {f"film/film/{f}": mb for f, mb in SD15_REPO.items()}))
    patch = patch_hf if hub_name == "hf" else patch_ms
    hub = patch(monkeypatch, FakeHub({repo_id: repo}, fail_after=1))
    code, _, err = run_cli("models", "download", name)
    assert code == 2 and "connection reset by peer" in err and err.count("\n") == 1
    folder = ModelStore().local_dir(MODELS[name].reference)
    assert files_under(folder)  # files were partly written...
    assert not (folder / MARKER).exists()
    assert not ModelStore().is_present(MODELS[name].reference, MODELS[name].allow_patterns)  # ...but it is missing
    row = {r["name"]: r for r in model_status()}[name]
    assert row["present"] is False
    code, out, _ = run_cli("models")
    assert [ln for ln in out.splitlines() if ln.startswith(name + " ")][0].split()[1] == "missing"
    monkeypatch.setenv("FACECHAIN_OFFLINE", "1")  # and nothing loads it offline
    code, _, err = run_cli("models", "download", name)
    assert code == 2 and "offline" in err
    monkeypatch.delenv("FACECHAIN_OFFLINE")
    hub.fail_after = None  # the retry completes
    assert run_cli("models", "download", name)[0] == 0
    assert ModelStore().is_present(MODELS[name].reference, MODELS[name].allow_patterns)
    assert {r["name"]: r for r in model_status()}[name]["present"] is True


def test_cache_without_marker_or_with_a_deleted_file_is_missing(tmp_path, monkeypatch, online):
    hub = patch_hf(monkeypatch, FakeHub({"lllyasviel/control_v11p_sd15_canny": CONTROLNET_REPO}))
    store = ModelStore(cache_dir=tmp_path, offline=False)
    ref = MODELS["canny-controlnet"].reference
    folder = store.local_dir(ref)
    folder.mkdir(parents=True)
    for f in layouts.CONTROLNET_FILES:  # every file there, but no marker: an older or foreign cache
        (folder / f).write_bytes(b"x")
    assert not store.is_present(ref)
    offline = ModelStore(cache_dir=tmp_path, offline=True)
    with pytest.raises(Exception, match="offline"):
        offline.resolve(ref, name="canny-controlnet")
    store.resolve(ref)
    assert store.is_present(ref) and len(hub.calls) == 1
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    assert not store.is_present(ref)


def test_marker_records_files_and_accumulates_per_repository(tmp_path, monkeypatch, online):
    patch_ms(monkeypatch, FakeHub({"iotang/lora_testing": {"MoXinV1.safetensors": 1, "edgEuropean_Vintage.safetensors": 1,
                                                          "big.ckpt": 9}}))
    store = ModelStore(cache_dir=tmp_path, offline=False)
    a, b = MODELS["style-lora-ink-painting"].reference, MODELS["style-lora-european-fields"].reference
    store.resolve(a)
    assert store.is_present(a) and not store.is_present(b)
    store.resolve(b)
    marker = json.loads((store.local_dir(a) / MARKER).read_text())
    assert set(marker["files"]) == {"MoXinV1.safetensors", "edgEuropean_Vintage.safetensors"}
    assert store.is_present(a) and store.is_present(b)


def test_a_wrong_file_name_is_never_marked_complete(tmp_path, monkeypatch, online):
    hub = patch_ms(monkeypatch, FakeHub({"owner/loras": {"a.safetensors": 1}}))
    store = ModelStore(cache_dir=tmp_path, offline=False)
    with pytest.raises(Exception, match="the repository has no b.safetensors"):
        store.resolve("ms:owner/loras#b.safetensors", name="style LoRA of 'x'")
    assert not (store.local_dir("ms:owner/loras") / MARKER).exists()
    assert not store.is_present("ms:owner/loras#b.safetensors")
    patch_hf(monkeypatch, FakeHub({"someone/broken": {k: v for k, v in SD15_REPO.items() if not k.startswith("vae/diffusion")}}))
    with pytest.raises(Exception, match="no vae weights"):
        store.resolve("someone/broken", kind="pipeline")
    assert len(hub.calls) == 1


# --- the registry is complete and honest ------------------------------------------------------------

def test_registry_lists_every_model_the_shipped_styles_use():
    from facechain.styles import list_styles

    refs = {s.reference for s in MODELS.values()}
    for style in list_styles(include_user=False):
        assert style.base_model in refs, style.name
        assert style.style_lora is None or style.style_lora in refs, style.name
    majic = MODELS["base-majicmix-realistic"]
    assert majic.kind == "pipeline" and sum(u.startswith("generate --style") for u in majic.used_by) >= 27
    from facechain.cli.main import build_parser

    verbs = set(next(a for a in build_parser()._actions if hasattr(a, "choices") and isinstance(a.choices, dict)).choices)
    for spec in MODELS.values():  # no model for a verb that does not exist
        for use in spec.used_by:
            assert use.split()[0] in verbs, (spec.name, use)
    assert MODELS["abpn-retouch"].reference.startswith("ms:damo/cv_unet_skin_retouching_torch")
    assert all(s.license for s in MODELS.values())


def test_registry_fact_files_match_the_fact_loader():
    from facechain.fact.config import PUBLISHED_ADAPTER_FILES, PUBLISHED_ENCODER_FILE
    from facechain.models.registry import FACT_FILES

    assert set(FACT_FILES) == {PUBLISHED_ENCODER_FILE, *PUBLISHED_ADAPTER_FILES.values()}
    assert MODELS["fact-adapter"].allow_patterns == FACT_FILES


def test_models_listing_has_licence_and_size(tmp_path, monkeypatch, online):
    code, out, _ = run_cli("models")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["NAME", "STATUS", "SIZE", "LICENCE"]
    row = next(r for r in rows if r.startswith("base-sd15 "))
    assert "missing" in row and "~4.2 GB" in row and "CreativeML OpenRAIL-M" in row
    patch_hf(monkeypatch, FakeHub({"lllyasviel/control_v11p_sd15_canny": CONTROLNET_REPO}))
    assert run_cli("models", "download", "canny-controlnet")[0] == 0
    code, out, _ = run_cli("models", "--json")
    canny = {r["name"]: r for r in json.loads(out)}["canny-controlnet"]
    assert canny["present"] and canny["size_bytes"] == sum(len(_content("lllyasviel/control_v11p_sd15_canny", f))
                                                          for f in layouts.CONTROLNET_FILES)
