"""SD 1.5 vs SDXL: detecting a model's family from configs and safetensors headers, and refusing
mixtures in one line (exit 2) before any model loads.

Key layouts of formats we cannot download here (SGM single files, kohya LoRAs, SD 2.x) are written
as safetensors files with the published tensor names and shapes (tiny tensors where the shape does
not matter); the diffusers layouts come from the tiny models themselves.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from facechain.diffusion.checkpoints import read_key_shapes
from facechain.diffusion.family import (
    FamilyMismatchError,
    base_model_family,
    check_compatible,
    controlnet_family,
    lora_family,
)
from facechain.identity import Identity
from facechain.testing.tiny import (
    save_tiny_controlnet,
    save_tiny_lora,
    save_tiny_sd,
    save_tiny_sdxl,
    save_tiny_sdxl_controlnet,
    tiny_sdxl_unet,
    tiny_unet,
)
from tests.cli_helpers import run_cli


def write_keys(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    """A safetensors file with these tensor names and shapes (zeros: only the header matters)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(path))
    return path


# Published key layouts (names as the real files spell them; shapes where detection reads them).
SGM_SDXL_BASE = {
    "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": (77, 8),
    "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": (8,),
    "model.diffusion_model.label_emb.0.0.weight": (8, 8),
    "model.diffusion_model.input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight": (640, 2048),
}
SGM_SDXL_REFINER = {
    "conditioner.embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias": (8,),
    "model.diffusion_model.label_emb.0.0.weight": (8, 8),
}
LDM_SD15 = {
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (49408, 8),
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
    "model.diffusion_model.output_blocks.11.0.skip_connection.weight": (8, 8),
}
FLUX = {"model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale": (8,)}
KOHYA_SD15 = {
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 768),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": (320, 4),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha": (),
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (4, 768),
}
KOHYA_SDXL = {
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 2048),
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight": (640, 4),
    "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (4, 768),
    "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (4, 1280),
}
KOHYA_SDXL_UNET_ONLY_FIRST_BLOCKS = {  # no second transformer block, no text encoders: the width tells
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 2048),
}
PEFT_SD21 = {  # SD 2.x: same layout as SD 1.5, 1024-wide text conditioning
    "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 1024),
    "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight": (320, 4),
}
SDXL_CONTROLNET_FILE = {  # the original (LDM) layout, as the single-file loader reads it
    "control_model.input_hint_block.0.weight": (16, 3, 3, 3),
    "control_model.label_emb.0.0.weight": (8, 8),
    "control_model.input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight": (640, 2048),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    m = dict(sd=save_tiny_sd(root / "sd"), sdxl=save_tiny_sdxl(root / "sdxl"),
             cn=save_tiny_controlnet(root / "cn"), cnxl=save_tiny_sdxl_controlnet(root / "cnxl"),
             lora=save_tiny_lora(root / "lora-sd", tiny_unet(), seed=1),
             loraxl=save_tiny_lora(root / "lora-sdxl", tiny_sdxl_unet(), seed=2))
    return m


# --- detection ---------------------------------------------------------------------------------
def test_diffusers_folders_and_tiny_loras(models):
    assert base_model_family(models["sd"]).family == "sd15" and base_model_family(models["sd"]).cross_attention_dim == 32
    assert base_model_family(models["sdxl"]).family == "sdxl" and base_model_family(models["sdxl"]).cross_attention_dim == 64
    assert controlnet_family(models["cn"]) == ("sd15", 32) and controlnet_family(models["cnxl"]) == ("sdxl", 64)
    assert lora_family(models["lora"]) == ("sd15", 32) and lora_family(models["loraxl"]) == ("sdxl", 64)
    assert lora_family(models["loraxl"].parent) == ("sdxl", 64)  # a LoRA folder, as identities hold it


@pytest.mark.parametrize("keys, family, width", [
    (SGM_SDXL_BASE, "sdxl", 2048), (LDM_SD15, "sd15", 768),
])
def test_single_file_checkpoints_by_header(tmp_path, keys, family, width):
    info = base_model_family(write_keys(tmp_path / "model.safetensors", keys))
    assert (info.family, info.cross_attention_dim) == (family, width)


@pytest.mark.parametrize("keys, needle", [(SGM_SDXL_REFINER, "SDXL refiner"), (FLUX, "SD3/Flux")])
def test_unusable_single_files_are_refused(tmp_path, keys, needle):
    with pytest.raises(FamilyMismatchError, match=needle):
        base_model_family(write_keys(tmp_path / "model.safetensors", keys))


def test_unusable_diffusers_folders_are_refused(models, tmp_path):
    refiner = tmp_path / "refiner"
    shutil.copytree(models["sdxl"], refiner)
    index = json.loads((refiner / "model_index.json").read_text())
    index["text_encoder"] = [None, None]
    (refiner / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(FamilyMismatchError, match="refiner"):
        base_model_family(refiner)
    sd3 = tmp_path / "sd3"
    sd3.mkdir()
    (sd3 / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusion3Pipeline"}))
    with pytest.raises(FamilyMismatchError, match="StableDiffusion3Pipeline"):
        base_model_family(sd3)


@pytest.mark.parametrize("keys, family, width", [
    (KOHYA_SD15, "sd15", 768), (KOHYA_SDXL, "sdxl", 2048), (KOHYA_SDXL_UNET_ONLY_FIRST_BLOCKS, "sdxl", 2048),
    (PEFT_SD21, "sd15", 1024),
])
def test_lora_layouts(tmp_path, keys, family, width):
    assert lora_family(write_keys(tmp_path / "lora.safetensors", keys)) == (family, width)


def test_controlnet_single_file(tmp_path):
    assert controlnet_family(write_keys(tmp_path / "cn.safetensors", SDXL_CONTROLNET_FILE)) == ("sdxl", 2048)


def test_header_reader_reads_only_the_header(tmp_path):
    path = write_keys(tmp_path / "x.safetensors", {"a.weight": (3, 2)})
    assert read_key_shapes(path) == {"a.weight": (3, 2)}
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(Exception, match="junk.safetensors: cannot read checkpoint .*not a valid .safetensors"):
        read_key_shapes(tmp_path / "junk.safetensors")


# --- the check ---------------------------------------------------------------------------------
def test_check_compatible_names_the_file_in_one_line(models, tmp_path):
    assert check_compatible(models["sdxl"], face_lora=models["loraxl"], style_loras=[models["loraxl"]],
                            controlnets=[models["cnxl"]]) == "sdxl"
    assert check_compatible(models["sd"], face_lora=models["lora"], controlnets=[models["cn"]]) == "sd15"
    cases = [
        (dict(style_loras=[models["lora"]]), models["lora"], "an SD 1.5 style LoRA cannot be used with the SDXL base model"),
        (dict(face_lora=models["lora"]), models["lora"], "an SD 1.5 face LoRA cannot be used with the SDXL base model"),
        (dict(controlnets=[models["cn"]]), models["cn"], "an SD 1.5 ControlNet cannot be used with the SDXL base model"),
    ]
    for kwargs, culprit, message in cases:
        with pytest.raises(FamilyMismatchError) as err:
            check_compatible(models["sdxl"], **kwargs)
        text = str(err.value)
        assert text.startswith(f"{culprit}: ") and message in text and "\n" not in text
    with pytest.raises(FamilyMismatchError, match="an SDXL style LoRA cannot be used with the SD 1.5 base model"):
        check_compatible(models["sd"], style_loras=[models["loraxl"]])
    sd15_base = write_keys(tmp_path / "sd15.safetensors", LDM_SD15)
    sd21_lora = write_keys(tmp_path / "sd21.safetensors", PEFT_SD21)
    with pytest.raises(FamilyMismatchError, match="1024-wide text conditioning but the base model .* has 768"):
        check_compatible(sd15_base, style_loras=[sd21_lora])


def test_identity_family_from_manifest_or_from_its_lora(models, tmp_path):
    recorded = Identity(name="ann", base_model="x", trigger_word="a woman", path=tmp_path / "ann", family="sd15")
    legacy = Identity(name="bob", base_model="x", trigger_word="a man", path=models["lora"].parent)  # no family field
    for ident in (recorded, legacy):
        with pytest.raises(FamilyMismatchError, match=f"identity '{ident.name}' was trained on an SD 1.5 base model"):
            check_compatible(models["sdxl"], identities=[ident])
    assert check_compatible(models["sd"], identities=[recorded, legacy]) == "sd15"


# --- through the CLI: exit 2, one line, before any model loads ---------------------------------------
@pytest.fixture(scope="module")
def identities(models, tmp_path_factory, faces_dir):
    root = tmp_path_factory.mktemp("ids")
    out = {}
    for name, lora, base, family in (("sdperson", "lora", "sd", "sd15"), ("xlperson", "loraxl", "sdxl", "sdxl")):
        folder = root / name
        shutil.copytree(models[lora].parent, folder)
        shutil.copy(faces_dir / "obama" / "obama_small.jpg", folder / "template_face.png")
        Identity(name=name, base_model=str(models[base]), trigger_word="a handsome man", path=folder, family=family).save()
        out[name] = folder
    return out


def _one_line_exit_2(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], err


@pytest.fixture
def no_model_loading(monkeypatch):
    """Any attempt to build a pipeline fails the test: the errors must come before loading."""
    import facechain.diffusion.loading as loading
    import facechain.generation.pipeline_cache as pipeline_cache

    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the family check")

    for module in (loading, pipeline_cache):  # the generation cache holds its own references
        monkeypatch.setattr(module, "load_sd_pipeline", refuse)
        monkeypatch.setattr(module, "load_controlnet", refuse)


def test_generate_refuses_mixed_families(models, identities, tmp_path, no_model_loading):
    common = ["generate", "--prompt", "{trigger}", "--size", "64", "--steps", "1", "-o", tmp_path / "out"]
    code, _, err = run_cli(*common, "--person", identities["sdperson"], "--base-model", models["sdxl"])
    _one_line_exit_2(code, err, "identity 'sdperson' was trained on an SD 1.5 base model", str(models["sdxl"]))
    code, _, err = run_cli(*common, "--person", identities["xlperson"], "--style-lora", models["lora"])
    _one_line_exit_2(code, err, str(models["lora"]), "an SD 1.5 style LoRA cannot be used with the SDXL base model")
    code, _, err = run_cli(*common, "--person", identities["xlperson"], "--face-lora", models["lora"])
    _one_line_exit_2(code, err, str(models["lora"]), "an SD 1.5 face LoRA")
    code, _, err = run_cli(*common, "--person", identities["sdperson"], "--face-lora", models["loraxl"])
    _one_line_exit_2(code, err, "an SDXL face LoRA cannot be used with the SD 1.5 base model")


def test_inpaint_refuses_mixed_families(models, identities, faces_dir, tmp_path, no_model_loading):
    template = faces_dir / "obama" / "obama_2012_official_portrait.jpg"
    common = ["inpaint", template, "-o", tmp_path / "out", "--size", "64", "--steps", "2"]
    code, _, err = run_cli(*common, "--person", identities["sdperson"], "--base-model", models["sdxl"],
                           "--openpose-controlnet", models["cnxl"], "--canny-controlnet", models["cnxl"])
    _one_line_exit_2(code, err, "identity 'sdperson' was trained on an SD 1.5 base model")
    code, _, err = run_cli(*common, "--person", identities["xlperson"], "--openpose-controlnet", models["cn"],
                           "--canny-controlnet", models["cnxl"])
    _one_line_exit_2(code, err, str(models["cn"]), "an SD 1.5 ControlNet cannot be used with the SDXL base model")


def test_train_refuses_a_base_model_of_no_supported_family(models, faces_dir, tmp_path):
    from tests.test_train import write_prepared

    prepared = write_prepared(tmp_path / "prep", faces_dir)
    flux = write_keys(tmp_path / "flux.safetensors", FLUX)
    refiner = write_keys(tmp_path / "refiner.safetensors", SGM_SDXL_REFINER)
    for base, needle in ((flux, "SD3/Flux"), (refiner, "SDXL refiner, not a base model")):
        code, _, err = run_cli("train", prepared, "--base-model", base, "--output", tmp_path / "id", "-q")
        _one_line_exit_2(code, err, str(base), needle)
    assert not (tmp_path / "id").exists() and not (tmp_path / "id.work").exists()
