"""Seconds per step of ``facechain inpaint`` on this machine, on full-size and tiny SD 1.5 models.

Run (one heavy job at a time on a shared machine)::

    flock /tmp/facechain-heavy.lock python benchmarks/bench_inpaint.py

Part 1 builds the full-size SD 1.5 architecture (UNet 860 M parameters, VAE, CLIP text encoder, two
full-size ControlNets) with *random weights* (no download is possible here) and runs the two-stage
pipeline on a real template photo (../shared/faces astronaut) with a random rank-4 face LoRA:
1 face, ``--candidates`` candidates, ``--steps`` steps at ``--resolution`` px. The times are what
the real models cost on this CPU; the pictures are noise. Step times are summed by the pipeline
itself (``Portraits.timings``).

Part 2 runs the tiny test models on templates of growing size (512 px, a two-person group photo,
6000x4000) to show the crop path: the cost of SD does not grow with the template, only the pixel
work (detection on a 2048 px copy, the paste) does. Peak memory is measured with tracemalloc
(numpy buffers).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import torch  # noqa: E402

from facechain.image_io import load_image, save_png  # noqa: E402
from facechain.inpainting import InpaintConfig, TemplatePortraitPipeline, inpaint  # noqa: E402
from facechain.inpainting.testing import save_tiny_identity, save_tiny_inpaint_models, side_by_side  # noqa: E402
from facechain.perception import get_analyzer  # noqa: E402

FACES = Path(os.environ.get("FACECHAIN_TEST_FACES", REPO.parent / "shared" / "faces"))
STEPS = ["lora", "crop", "stage1", "warp", "stage2", "rank", "paste"]


def full_size_pipelines():
    """SD 1.5-shaped text-to-image + inpainting ControlNet pipelines (random weights, fp32, CPU)."""
    from diffusers import (AutoencoderKL, ControlNetModel, DDIMScheduler, MultiControlNetModel,
                           StableDiffusionControlNetInpaintPipeline, StableDiffusionControlNetPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel

    from facechain.diffusion.loading import quiet_ml_logs
    from facechain.testing.tiny import tiny_tokenizer

    quiet_ml_logs()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8).eval()
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
                        sample_size=512).eval()
    with torch.no_grad():  # SD's VAE posterior is near-deterministic; a random one is not
        vae.quant_conv.weight[4:] = 0.0
        vae.quant_conv.bias[4:] = -20.0
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                        num_attention_heads=12, max_position_embeddings=77, vocab_size=49408)).eval()
    openpose, canny = ControlNetModel.from_unet(unet).eval(), ControlNetModel.from_unet(unet).eval()
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    t2i = StableDiffusionControlNetPipeline(vae=vae, text_encoder=text, tokenizer=tiny_tokenizer(), unet=unet,
                                            controlnet=openpose, scheduler=sched, safety_checker=None,
                                            feature_extractor=None, requires_safety_checker=False)
    inp = StableDiffusionControlNetInpaintPipeline.from_pipe(t2i, controlnet=MultiControlNetModel([openpose, canny]))
    return t2i, inp


def random_face_lora(unet, folder: Path, face_photo: Path):
    """A rank-4 LoRA for ``unet`` saved as an identity folder (adapter removed from ``unet`` again)."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from facechain.identity import Identity

    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]), adapter_name="bench")
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet, adapter_name="bench"))
    unet.delete_adapters("bench")
    folder.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(save_directory=folder, unet_lora_layers=layers, safe_serialization=True)
    save_png(folder / "template_face.png", load_image(face_photo))
    ident = Identity(name="bench", base_model="random-sd15", trigger_word="a handsome man", path=folder)
    ident.save()
    return ident


def part1(tmp: Path, args) -> None:
    t = time.perf_counter()
    t2i, inp = full_size_pipelines()
    build = time.perf_counter() - t
    ident = random_face_lora(t2i.unet, tmp / "bench-id", FACES / "obama/obama_2012_official_portrait.jpg")
    cfg = InpaintConfig(size=args.resolution, steps=args.steps, num_images=args.candidates)
    pipe = TemplatePortraitPipeline(t2i, inp, get_analyzer("hog"), config=cfg)
    t = time.perf_counter()
    result = inpaint(FACES / "eileen_collins/astronaut.png", ident.path, output=tmp / "out1", pipeline=pipe,
                     quiet=True)
    total = time.perf_counter() - t
    tim = result.timings
    print(f"\nPart 1: full-size SD 1.5 architecture (random weights), fp32 CPU, {args.resolution} px crop, "
          f"{args.steps} steps (stage 2: strength 0.65 -> {int(args.steps * 0.65)} steps), "
          f"{args.candidates} candidate(s), 1 face; torch threads {torch.get_num_threads()}")
    print(f"{'step':<10} {'seconds':>8}")
    print(f"{'build':<10} {build:>8.1f}   (construct models from config; a real run loads them from disk)")
    for s in STEPS:
        print(f"{s:<10} {tim.get(s, 0.0):>8.1f}")
    print(f"{'total':<10} {total:>8.1f}   (inpaint() call: detection, prompts, pipeline, PNG + JSON)")
    del pipe, t2i, inp, result
    gc.collect()


def part2(tmp: Path) -> None:
    models = save_tiny_inpaint_models(tmp / "tiny")
    ident = save_tiny_identity(tmp / "tiny-id", "tiny", FACES / "obama/obama_2012_official_portrait.jpg", seed=1)
    cfg = InpaintConfig(resolution=64, steps=2, num_images=1)
    pipe = TemplatePortraitPipeline.from_models(models["base_model"], models["openpose_controlnet"],
                                                models["canny_controlnet"], analyzer=get_analyzer("hog"), config=cfg)
    group = side_by_side([FACES / "obama/obama_2012_official_portrait.jpg",
                          FACES / "biden/biden_official_portrait_unverified.jpg"])
    big = cv2.resize(group, (6000, round(group.shape[0] * 6000 / group.shape[1])), interpolation=cv2.INTER_LINEAR)
    big = cv2.copyMakeBorder(big, 0, 4000 - big.shape[0], 0, 0, cv2.BORDER_CONSTANT, value=(128, 128, 128))
    save_png(tmp / "group.png", group)
    save_png(tmp / "huge.png", big)
    cases = [("astronaut 512x512", FACES / "eileen_collins/astronaut.png"),
             ("group 970x512", tmp / "group.png"), ("group 6000x4000", tmp / "huge.png")]
    inpaint(cases[0][1], ident.path, output=tmp / "warm", pipeline=pipe, quiet=True)  # warm-up
    print("\nPart 2: tiny models (64 px crops, 2 steps), 1 face, 1 candidate: template size vs cost")
    print(f"{'template':<18} {'crop px':>8} {'SD s':>6} {'pixel s':>8} {'total s':>8} {'peak MB':>8}")
    for i, (label, path) in enumerate(cases):
        gc.collect()
        tracemalloc.start()
        t = time.perf_counter()
        result = inpaint(path, ident.path, output=tmp / f"out2-{i}", pipeline=pipe, quiet=True)
        total = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        tim = result.timings
        sd = tim.get("stage1", 0) + tim.get("stage2", 0)
        pixel = tim.get("crop", 0) + tim.get("paste", 0)
        side = result.settings["faces"][0]["crop"][2]  # [x0, y0, side]
        print(f"{label:<18} {side:>8} {sd:>6.2f} {pixel:>8.2f} {total:>8.2f} {peak:>8.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--candidates", type=int, default=1)
    ap.add_argument("--skip-full", action="store_true", help="only the tiny-model part")
    args = ap.parse_args()
    os.environ.setdefault("FACECHAIN_OFFLINE", "1")
    logging.getLogger("facechain").setLevel(logging.ERROR)  # random models: "stage 1 drew no face" every run
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["FACECHAIN_HOME"] = str(tmp / "home")
        if not args.skip_full:
            part1(tmp, args)
        part2(tmp)


if __name__ == "__main__":
    main()
