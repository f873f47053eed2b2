"""FACT adapter: architecture, exactness when off, ControlNet isolation, SDXL layout, checkpoint mapping.

Tiny models of the real architectures (144 face tokens, 16 queries per photo) on real photos.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from facechain.errors import InputError
from facechain.fact.adapter import FaceTokenRouting, FactAdapter, cross_attention_blocks, install_adapter
from facechain.fact.checkpoint import (
    map_published_adapter,
    to_published_adapter,
    to_published_encoder,
)
from facechain.fact.config import PUBLISHED_ADAPTER_FILES, PUBLISHED_ENCODER_FILE, FactConfig
from facechain.fact.integration import FactSession
from facechain.fact.models import convert_published, load_fact
from facechain.fact.preprocess import ARCFACE_TEMPLATE_112, prepare_face_photo, similarity_transform
from facechain.fact.testing import tiny_fact_config, tiny_fact_model
from facechain.fact.training import fair_loss
from facechain.testing.tiny import (
    tiny_controlnet,
    tiny_sd_components,
    tiny_sd_pipeline,
    tiny_sdxl_unet,
    tiny_unet,
)

STEPS = dict(num_inference_steps=2, height=64, width=64, output_type="np")



def _gen():
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="module")
def obama(faces_dir):
    return prepare_face_photo(faces_dir / "obama" / "obama_small.jpg")


@pytest.fixture(scope="module")
def pipe():
    p = tiny_sd_pipeline()
    p.set_progress_bar_config(disable=True)
    return p


def _no_hooks(unet) -> bool:
    return all(not m._forward_pre_hooks and not m._forward_hooks for m in unet.modules()) and not hasattr(unet, "_facechain_fact")


# --- preprocessing ---------------------------------------------------------------------------
def test_alignment_puts_eyes_on_template_and_masks_background(faces_dir, obama):
    m = similarity_transform(obama.face.kps, ARCFACE_TEMPLATE_112)
    warped = np.c_[obama.face.kps, np.ones(5)] @ m.T
    assert np.abs(warped - ARCFACE_TEMPLATE_112).max() < 6.0  # a similarity fit of 5 real points
    assert obama.aligned.shape == (112, 112, 3)
    assert obama.aligned[:4, :4].max() == 0 and obama.aligned[-4:, :4].max() == 0  # corners masked black
    assert obama.aligned[50:70, 45:65].mean() > 40  # the face itself is kept
    t = obama.tensor()
    assert t.shape == (3, 112, 112) and -1.0 <= float(t.min()) and float(t.max()) <= 1.0


def test_default_adapter_offline_names_the_model_and_the_fix(pipe, obama):
    from facechain.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match=r"fact-adapter.*facechain models download fact-adapter"):
        FactSession.from_photos(pipe, obama)


def test_photo_without_face_is_one_line_input_error(tmp_path):
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((160, 160, 3), 200, np.uint8)).save(blank)
    with pytest.raises(InputError, match=r"wall\.png: no face found"):
        prepare_face_photo(blank)


# --- exactness when the adapter is off --------------------------------------------------------
def test_scale_zero_and_closed_gates_equal_base_and_removal_is_clean(pipe, obama):
    base = pipe("a portrait", generator=_gen(), **STEPS).images
    open_model = tiny_fact_model(pipe.unet, open_gates=0.7)
    session = FactSession.from_photos(pipe, [obama], adapter=open_model, scale=0.0)
    with session:
        off = pipe(**session.embeds("a portrait"), generator=_gen(), **STEPS).images
        session.scale = 0.8
        on = pipe(**session.embeds("a portrait"), generator=_gen(), **STEPS).images
    assert np.array_equal(off, base)
    assert np.abs(on - base).max() > 1e-3  # open gates + scale really change the image
    assert _no_hooks(pipe.unet)
    assert np.array_equal(pipe("a portrait", generator=_gen(), **STEPS).images, base)

    fresh = FactSession.from_photos(pipe, [obama], adapter=tiny_fact_model(pipe.unet), scale=1.0)  # α = 0
    with fresh:
        init = pipe(**fresh.embeds("a portrait"), generator=_gen(), **STEPS).images
    assert np.array_equal(init, base)
    assert fresh.metadata()["face_tokens"] == 16 and fresh.metadata()["adapter_scale"] == 1.0


def test_several_photos_give_16_tokens_each(pipe, faces_dir, obama):
    model = tiny_fact_model(pipe.unet, open_gates=0.5)
    other = faces_dir / "obama" / "obama_2010_blue_room_crop.jpg"
    session = FactSession.from_photos(pipe, [obama, other], adapter=model, scale=0.5)
    emb = session.embeds(["a man", "a man in a suit"], "blurry")
    assert emb["prompt_embeds"].shape == (2, 77 + 32, 32)
    assert emb["negative_prompt_embeds"].shape == (2, 77 + 32, 32)
    # the negative side carries the unconditional face (resampler of zero features), not the face
    assert torch.allclose(emb["negative_prompt_embeds"][0, 77:93], emb["negative_prompt_embeds"][0, 93:])
    assert not torch.allclose(emb["prompt_embeds"][0, 77:], emb["negative_prompt_embeds"][0, 77:])
    no_cfg = session.append_face_tokens(torch.zeros(3, 77, 32))  # guidance off: no negative side
    assert no_cfg["prompt_embeds"].shape == (3, 77 + 32, 32) and no_cfg["negative_prompt_embeds"] is None
    seen = []
    handle = pipe.unet.register_forward_pre_hook(lambda m, a, k: seen.append(k["encoder_hidden_states"].shape[1]), with_kwargs=True)
    try:
        with session:
            pipe(**emb, generator=_gen(), **STEPS)
    finally:
        handle.remove()
    assert set(seen) == {77 + 32}


# --- ControlNets never see face tokens --------------------------------------------------------
def _spy_tokens(module, log):
    original = module.forward

    def forward(*args, **kwargs):
        states = kwargs["encoder_hidden_states"] if "encoder_hidden_states" in kwargs else args[2]
        log.append(states.shape[1])
        return original(*args, **kwargs)

    module.forward = forward
    return original


def test_controlnet_pipeline_runs_with_face_but_controlnet_sees_text_only(obama):
    from diffusers import StableDiffusionControlNetPipeline

    cn = tiny_controlnet()
    pipe = StableDiffusionControlNetPipeline(**tiny_sd_components(), controlnet=cn, safety_checker=None,
                                             feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pose = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    base = pipe("a portrait", image=pose, generator=_gen(), **STEPS).images
    cn_tokens, unet_tokens = [], []
    _spy_tokens(cn, cn_tokens)
    _spy_tokens(pipe.unet, unet_tokens)
    session = FactSession.from_photos(pipe, obama, adapter=tiny_fact_model(pipe.unet, open_gates=0.7), scale=1.0)
    with session:
        out = pipe(**session.embeds("a portrait"), image=pose, generator=_gen(), **STEPS).images
        session.scale = 0.0
        off = pipe(**session.embeds("a portrait"), image=pose, generator=_gen(), **STEPS).images
    assert cn_tokens and set(cn_tokens) == {77}
    assert set(unet_tokens) == {77 + 16}
    assert np.abs(out - base).max() > 1e-3
    assert np.array_equal(off, base)
    assert _no_hooks(cn) or not cn._forward_pre_hooks


def test_multicontrolnet_inpaint_pipeline_shares_unet_via_applied_to(obama):
    from diffusers import StableDiffusionControlNetInpaintPipeline, StableDiffusionPipeline

    comps = tiny_sd_components()
    t2i = StableDiffusionPipeline(**comps, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    nets = [tiny_controlnet(0), tiny_controlnet(1)]
    inpaint = StableDiffusionControlNetInpaintPipeline.from_pipe(t2i, controlnet=nets)
    inpaint.set_progress_bar_config(disable=True)
    seen = [[], []]
    for net, log in zip(nets, seen):
        _spy_tokens(net, log)
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    mask = Image.fromarray(np.pad(np.full((32, 32), 255, np.uint8), 16))
    conds = [image, image]
    session = FactSession.from_photos(t2i, obama, adapter=tiny_fact_model(t2i.unet, open_gates=0.7), scale=1.0)
    with session.applied_to(t2i, inpaint):
        out = inpaint(**session.embeds("a portrait", pipe=inpaint), image=image, mask_image=mask, control_image=conds,
                      strength=0.65, generator=_gen(), **STEPS).images
    assert out.shape == (1, 64, 64, 3) and np.isfinite(out).all()
    assert set(seen[0]) == {77} and set(seen[1]) == {77}
    assert _no_hooks(t2i.unet)


# --- UNet layouts -----------------------------------------------------------------------------
@pytest.mark.parametrize("make_unet, expected_blocks", [(tiny_unet, 4), (tiny_sdxl_unet, 8)])
def test_sd15_and_sdxl_layout_unets_accept_the_adapter(make_unet, expected_blocks):
    unet = make_unet().requires_grad_(False)
    blocks = cross_attention_blocks(unet)
    assert len(blocks) == expected_blocks
    model = tiny_fact_model(unet, open_gates=0.5)
    dim = model.config.output_dim
    x, t = torch.randn(2, 4, 16, 16), torch.tensor([10, 500])
    text = torch.randn(2, 77, dim)
    kw = {}
    if unet.config.addition_embed_type == "text_time":
        kw["added_cond_kwargs"] = {"text_embeds": torch.randn(2, 32), "time_ids": torch.randn(2, 6)}
    face = model.adapter.resampler(torch.randn(2, 144, model.config.encoder_width))
    with torch.no_grad():
        base = unet(x, t, text, **kw).sample
    routing = FaceTokenRouting(text_len=77, face_len=16, scale=1.0)
    hooks = install_adapter(unet, model.adapter, routing)
    try:
        out = unet(x, t, torch.cat([text, face], 1), **kw).sample
        out.square().mean().backward()
        routing.scale = 0.0
        with torch.no_grad():
            off = unet(x, t, torch.cat([text, face], 1), **kw).sample
    finally:
        hooks.remove()
    assert not torch.allclose(out, base, atol=1e-4)
    assert torch.equal(off, base)
    grads = [p.grad for p in model.adapter.parameters()]
    assert all(g is not None for g in grads)  # every adapter layer and the resampler are trained
    assert all(p.grad is None for p in unet.parameters())  # the UNet is untouched
    assert _no_hooks(unet)


def test_sdxl_pipeline_runs_with_face_tokens_and_pooled_embeddings(obama):
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from facechain.testing.tiny import tiny_scheduler, tiny_text_encoder, tiny_tokenizer, tiny_vae

    torch.manual_seed(0)
    text_2 = CLIPTextModelWithProjection(CLIPTextConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=5, vocab_size=1000,
        bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=32)).eval()
    pipe = StableDiffusionXLPipeline(vae=tiny_vae(), text_encoder=tiny_text_encoder(), text_encoder_2=text_2,
                                     tokenizer=tiny_tokenizer(), tokenizer_2=tiny_tokenizer(), unet=tiny_sdxl_unet(),
                                     scheduler=tiny_scheduler())
    pipe.set_progress_bar_config(disable=True)
    base = pipe("a portrait", generator=_gen(), **STEPS).images
    session = FactSession.from_photos(pipe, obama, adapter=tiny_fact_model(pipe.unet, open_gates=0.6), scale=1.0)
    with session:
        emb = session.embeds("a portrait")
        on = pipe(**emb, generator=_gen(), **STEPS).images
        session.scale = 0.0
        off = pipe(**session.embeds("a portrait"), generator=_gen(), **STEPS).images
    assert emb["prompt_embeds"].shape == (1, 77 + 16, 64) and emb["pooled_prompt_embeds"].shape == (1, 32)
    assert np.abs(on - base).max() > 1e-3 and np.array_equal(off, base)


def test_adapter_rejects_unet_of_other_width():
    with pytest.raises(Exception, match="cross_attention_dim"):
        FactAdapter.for_unet(tiny_unet(), FactConfig(output_dim=768))


# --- FAIR loss --------------------------------------------------------------------------------
def test_fair_loss_measures_increment_outside_the_face():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, :4] = 1.0  # left half is face
    features = torch.ones(1, 64, 3)
    inside = torch.zeros(1, 8, 8, 3)
    inside[:, :, :4] = 5.0
    outside = torch.zeros(1, 8, 8, 3)
    outside[:, :, 4:] = 0.25
    assert float(fair_loss([(features, inside.reshape(1, 64, 3))], mask)) == pytest.approx(0.0, abs=1e-6)
    assert float(fair_loss([(features, outside.reshape(1, 64, 3))], mask)) == pytest.approx(0.25, rel=1e-4)
    # a coarser block (4x4 grid) gets the mask resized
    small = torch.full((1, 16, 3), 0.5)
    assert float(fair_loss([(torch.ones(1, 16, 3), small)], mask)) == pytest.approx(0.5, rel=1e-4)


# --- checkpoints: published layout, our safetensors -------------------------------------------
def _published_files(folder, model, variant="film"):
    folder.mkdir(parents=True, exist_ok=True)
    enc = to_published_encoder(model.encoder.state_dict())
    enc["mask_token"] = torch.zeros(1, 1, model.config.encoder_width)
    enc["feature.0.weight"] = torch.zeros(4, 4)  # recognition head: present in the real file, unused
    enc["senet.0.weight"] = torch.zeros(4, 4)
    ad = to_published_adapter(model.adapter.state_dict())
    for info in model.adapter.blocks:  # the reference also saved a copy of each block's LayerNorm
        ad[f"{info.path}.attn2.processor.ln.weight"] = torch.ones(info.width)
    torch.save(enc, folder / PUBLISHED_ENCODER_FILE)
    torch.save(ad, folder / PUBLISHED_ADAPTER_FILES[variant])
    return enc, ad


def test_published_layout_round_trips_and_counts_keys(tmp_path):
    unet = tiny_unet()
    model = tiny_fact_model(unet, seed=3, open_gates=0.3)
    enc, ad = _published_files(tmp_path / "fact", model)
    # names as the reference code writes them
    assert "blocks.0.attn.qkv.weight" in enc and "patch_embed.proj.weight" in enc and "norm.weight" in enc
    assert "local_fac_prj.latents" in ad and "local_fac_prj.layers.1.1.3.weight" in ad
    assert "mid_block.attentions.0.transformer_blocks.0.attn2.processor.alpha_attn" in ad
    assert "down_blocks.1.attentions.0.transformer_blocks.0.attn2.processor.ff.net.0.proj.weight" in ad

    loaded = load_fact(tmp_path / "fact", unet, config=tiny_fact_config())
    for a, b in ((loaded.encoder, model.encoder), (loaded.adapter, model.adapter)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    enc_report, ad_report = loaded.reports
    assert enc_report.matched == len(model.encoder.state_dict()) and len(enc_report.ignored) == 3
    assert ad_report.matched == len(model.adapter.state_dict()) and len(ad_report.ignored) == len(model.adapter.blocks)
    assert not ad_report.unmatched and not ad_report.missing
    mapped, _ = map_published_adapter(ad)
    assert to_published_adapter(mapped).keys() == {k for k in ad if ".ln." not in k}


@pytest.mark.parametrize("damage, message", [
    ("drop", "missing"), ("shape", "wrong shape"), ("unknown", "unknown FACT key"), ("encoder", "not a TransFace"),
])
def test_published_loader_fails_loudly_on_mismatch(tmp_path, damage, message):
    unet = tiny_unet()
    model = tiny_fact_model(unet)
    enc, ad = _published_files(tmp_path / "fact", model)
    if damage == "encoder":
        enc["cls_token"] = torch.zeros(1, 1, 32)
        torch.save(enc, tmp_path / "fact" / PUBLISHED_ENCODER_FILE)
    key = "mid_block.attentions.0.transformer_blocks.0.attn2.processor.linear.weight"
    if damage == "drop":
        del ad[key]
    elif damage == "shape":
        ad[key] = torch.zeros(3, 3)
    elif damage == "unknown":
        ad["mid_block.attentions.0.transformer_blocks.0.attn2.processor.extra_gate"] = torch.zeros(())
    torch.save(ad, tmp_path / "fact" / PUBLISHED_ADAPTER_FILES["film"])
    with pytest.raises(InputError, match=message):
        load_fact(tmp_path / "fact", unet, config=tiny_fact_config())


def test_convert_published_to_safetensors_and_use_it(tmp_path, pipe, obama, capsys):
    from facechain.fact.convert import main as convert_main

    model = tiny_fact_model(pipe.unet, seed=5, open_gates=0.4)
    _published_files(tmp_path / "fact", model, variant="maj")
    out = convert_published(tmp_path / "fact" / PUBLISHED_ADAPTER_FILES["maj"], tmp_path / "fact" / PUBLISHED_ENCODER_FILE,
                            tmp_path / "converted", unet=pipe.unet, config=tiny_fact_config())
    assert sorted(p.name for p in out.iterdir()) == ["face_encoder.safetensors", "fact_adapter.safetensors"]
    ours = load_fact(out, pipe.unet)
    sa, sb = ours.adapter.state_dict(), model.adapter.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sb)
    with FactSession.from_photos(pipe, obama, adapter=ours, scale=0.5) as a, torch.no_grad():
        ea = a.embeds("x")
    with FactSession.from_photos(pipe, obama, adapter=model, scale=0.5) as b, torch.no_grad():
        eb = b.embeds("x")
    assert torch.allclose(ea["prompt_embeds"], eb["prompt_embeds"], atol=1e-6)
    # the module entry point refuses to overwrite, with a one-line error and exit code 2
    args = [str(tmp_path / "fact"), str(out), "--variant", "maj"]
    assert convert_main(args) == 2
    assert "already exists" in capsys.readouterr().err
