"""FACT adapter vs face-LoRA inference on the same full-size SD 1.5 components (random weights).

Run (heavy: ~6 GB RAM, a few minutes on CPU; one heavy job at a time on shared machines):

    flock /tmp/facechain-heavy.lock python benchmarks/bench_fact.py [--steps 4] [--size 256]

Prints two tables:
1. seconds per portrait: face LoRA (rank 4, loaded + fused, as ``generate`` does) vs FACT
   (photo analysis + face encoding + hooks) — same UNet/VAE/text encoder, same steps and size;
2. what FACT adds: parameters, and FLOPs per UNet step (counted with
   ``torch.utils.flop_counter`` on the meta device, so 512 px costs nothing to count).

Random weights: timings and FLOPs are those of the real architectures; the images are noise.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PHOTO = REPO.parent / "shared" / "faces" / "obama" / "obama_2012_official_portrait.jpg"


def sd15_components():
    """Full-size SD 1.5 UNet, VAE and CLIP-L text encoder from their configs (random weights)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from facechain.testing.tiny import tiny_scheduler, tiny_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, cross_attention_dim=768, attention_head_dim=8, block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    ).eval()
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    ).eval()
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                        num_hidden_layers=12, max_position_embeddings=77, vocab_size=49408,
                                        bos_token_id=0, eos_token_id=1, pad_token_id=1)).eval()
    return dict(unet=unet, vae=vae, text_encoder=text, tokenizer=tiny_tokenizer(), scheduler=tiny_scheduler())


def full_fact_model(unet):
    from facechain.fact.adapter import FactAdapter
    from facechain.fact.config import FactConfig
    from facechain.fact.encoder import FaceEncoder
    from facechain.fact.models import FactModel

    torch.manual_seed(1)
    cfg = FactConfig(output_dim=768)
    adapter = FactAdapter.for_unet(unet, cfg)
    with torch.no_grad():
        for layer in adapter.layers.values():
            layer.gate_attn.fill_(0.5)
            layer.gate_ff.fill_(0.5)
    return FactModel(FaceEncoder(cfg).eval().requires_grad_(False), adapter, "random-full-size")


def random_face_lora(unet, folder: Path, rank: int) -> Path:
    """A rank-``rank`` face LoRA in diffusers format, as ``facechain train`` writes it."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]), adapter_name="bench")
    sd = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet, adapter_name="bench"))
    StableDiffusionPipeline.save_lora_weights(save_directory=str(folder), unet_lora_layers=sd, safe_serialization=True)
    unet.delete_adapters("bench")
    return folder


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def unet_step_flops(size: int, with_adapter: bool) -> int:
    """FLOPs of one UNet call with CFG (batch 2) at ``size`` px, counted on the meta device."""
    from diffusers import UNet2DConditionModel

    from facechain.fact.adapter import FaceTokenRouting, FactAdapter, install_adapter
    from facechain.fact.config import FactConfig

    with torch.device("meta"):
        unet = UNet2DConditionModel(
            sample_size=64, cross_attention_dim=768, attention_head_dim=8, block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        )
        adapter = FactAdapter.for_unet(unet, FactConfig(output_dim=768))
        x = torch.randn(2, 4, size // 8, size // 8)
        t = torch.tensor([500, 500])
        states = torch.randn(2, 77 + (16 if with_adapter else 0), 768)
    hooks = install_adapter(unet, adapter, FaceTokenRouting(text_len=77, face_len=16, scale=1.0)) if with_adapter else None
    try:
        return count_flops(lambda: unet(x, t, states))
    finally:
        if hooks:
            hooks.remove()


def once_per_photo_flops() -> tuple[int, int]:
    from facechain.fact.config import FactConfig
    from facechain.fact.encoder import FaceEncoder
    from facechain.fact.resampler import FaceResampler

    cfg = FactConfig()
    with torch.device("meta"):
        enc, res = FaceEncoder(cfg).requires_grad_(False), FaceResampler(cfg).requires_grad_(False)
        faces = torch.randn(1, 3, 112, 112)
        tokens = torch.randn(1, 144, 512)
    return count_flops(lambda: enc(faces)), count_flops(lambda: (res(tokens), res.unconditional(1)))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--lora-rank", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3, help="timings are the fastest of this many runs")
    args = ap.parse_args()
    torch.set_grad_enabled(False)

    from diffusers import StableDiffusionPipeline

    from facechain.diffusion.loading import quiet_ml_logs
    from facechain.fact.integration import FactSession
    from facechain.fact.preprocess import prepare_face_photo
    from facechain.generation.lora import LoraSpec, apply_loras

    quiet_ml_logs()
    comps = sd15_components()
    pipe = StableDiffusionPipeline(**comps, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    call = dict(num_inference_steps=args.steps, height=args.size, width=args.size, guidance_scale=7.0, output_type="np")
    prompt, negative = "a portrait of a man in a suit, studio light", "blurry, lowres"
    prepare_face_photo(PHOTO)  # load the dlib models outside the timings (both paths need them for post-processing)

    # warm-up: the first calls allocate, fault in the weights and pick kernels
    for steps in (1, args.steps):
        pipe(prompt, negative_prompt=negative, **dict(call, num_inference_steps=steps))

    # face LoRA: load + fuse, what generate does per identity; afterwards a plain pipe call
    with tempfile.TemporaryDirectory() as tmp:
        random_face_lora(pipe.unet, Path(tmp), args.lora_rank)
        _, t_lora_setup = timed(lambda: apply_loras(pipe, [LoraSpec("face", Path(tmp), 0.9)], fuse=True))

    # FACT: weights loaded once per process; per portrait: photo -> aligned face -> encoder -> resampler -> hooks
    model = full_fact_model(pipe.unet)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp)
        from facechain.fact.models import load_fact

        loaded, t_load = timed(lambda: load_fact(tmp, pipe.unet))
    del loaded
    gc.collect()
    setups = [timed(lambda: FactSession.from_photos(pipe, PHOTO, adapter=model, scale=0.5)) for _ in range(args.repeats)]
    session, t_fact_setup = setups[-1][0], min(t for _, t in setups)

    # the two generations interleaved, so that load changes on a shared machine hit both alike
    lora_runs, fact_runs = [], []
    for _ in range(args.repeats):
        lora_runs.append(timed(lambda: pipe(prompt, negative_prompt=negative, **call))[1])
        with session:
            fact_runs.append(timed(lambda: pipe(**session.embeds(prompt, negative), **call))[1])
    t_lora_gen, t_fact_gen = min(lora_runs), min(fact_runs)

    lora_total = t_lora_setup + t_lora_gen
    fact_total = t_fact_setup + t_fact_gen
    print(f"\nSeconds per portrait: SD 1.5 architecture (random weights), {args.size} px, {args.steps} steps, CFG, "
          f"CPU {torch.get_num_threads()} threads, fastest of {args.repeats}")
    print("| path | setup s | generation s | total s | ratio vs LoRA |")
    print("|---|---:|---:|---:|---:|")
    print(f"| face LoRA r{args.lora_rank} (load + fuse) | {t_lora_setup:.1f} | {t_lora_gen:.1f} | {lora_total:.1f} | 1.00 |")
    print(f"| FACT (detect + align + encode + hooks) | {t_fact_setup:.1f} | {t_fact_gen:.1f} | {fact_total:.1f} | "
          f"{fact_total / lora_total:.2f} |")
    print(f"(all generation runs: LoRA {', '.join(f'{t:.1f}' for t in lora_runs)}; "
          f"FACT {', '.join(f'{t:.1f}' for t in fact_runs)} s)")
    print(f"(once per process: loading the FACT weights from .safetensors took {t_load:.1f} s; "
          f"the face LoRA itself must first be trained, which FACT skips)")

    adapter_layers = sum(p.numel() for n, p in model.adapter.named_parameters() if n.startswith("layers."))
    resampler = sum(p.numel() for p in model.adapter.resampler.parameters())
    encoder = sum(p.numel() for p in model.encoder.parameters())
    unet_params = sum(p.numel() for p in pipe.unet.parameters())
    enc_flops, res_flops = once_per_photo_flops()
    rows = []
    for size in (args.size, 512):
        base_f, fact_f = unet_step_flops(size, False), unet_step_flops(size, True)
        rows.append((size, base_f, fact_f))
    print("\nWhat FACT adds (SD 1.5 layout, 16 cross-attention blocks)")
    print("| part | parameters | GFLOP |")
    print("|---|---:|---:|")
    print(f"| base UNet | {unet_params / 1e6:.1f} M | - |")
    print(f"| adapter layers (trained, in the UNet blocks) | {adapter_layers / 1e6:.1f} M ({100 * adapter_layers / unet_params:.1f}% of UNet) | - |")
    print(f"| resampler (trained, once per photo, + unconditional) | {resampler / 1e6:.1f} M | {res_flops / 1e9:.2f} |")
    print(f"| face encoder (frozen, once per photo) | {encoder / 1e6:.1f} M | {enc_flops / 1e9:.2f} |")
    for size, base_f, fact_f in rows:
        print(f"| UNet step, CFG batch 2, {size} px: base -> with FACT | - | {base_f / 1e9:.0f} -> {fact_f / 1e9:.0f} "
              f"(+{100 * (fact_f - base_f) / base_f:.1f}%) |")


if __name__ == "__main__":
    main()
