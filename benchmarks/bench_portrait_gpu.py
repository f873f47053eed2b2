"""Benchmark: seconds per portrait on a GPU, the reference's recipe at full size (SD 1.5 architecture).

Full-size SD 1.5 (UNet 860M, CLIP ViT-L, VAE) with random weights built in-process (no download;
random weights cost the same FLOPs as real ones), face LoRA (rank 4) + style LoRA fused, the
reference's LoRA-portrait recipe: DPM singlestep, 40 steps, guidance 7, 512x512; the FACT recipe's
50 steps at guidance 5 is the second row. Times facechain's own denoise + VAE decode
(:class:`~facechain.generation.portrait.PortraitGenerator`), batch 1 and batch 4, after a warm-up.
Face fusion and ranking run on the CPU and are in ``bench_generate.py``.

    python benchmarks/bench_portrait_gpu.py --device cuda [--dtype fp16] [--images 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32"])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--quick", action="store_true", help="2 steps per recipe (a smoke test of the script, not a measurement)")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU here", file=sys.stderr)
        return 2

    from bench_generate import full_size_sd15, random_lora

    from facechain.generation.lora import LoraSpec, apply_loras
    from facechain.generation.portrait import GenerationRequest, PortraitGenerator, StageTimes
    from facechain.generation.prompt import PromptPair
    from facechain.generation.samplers import set_sampler

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    t0 = time.perf_counter()
    pipe = full_size_sd15()
    with tempfile.TemporaryDirectory() as tmp:
        face = random_lora(pipe, Path(tmp) / "face", 1)
        style = random_lora(pipe, Path(tmp) / "style", 2)
        apply_loras(pipe, [LoraSpec("face", face, 0.95), LoraSpec("style", style, 0.25)], fuse=True)
    pipe = pipe.to(args.device, dtype)
    set_sampler(pipe, "dpm_singlestep")
    build = time.perf_counter() - t0
    prompts = PromptPair("a handsome man, short hair, wearing a business suit, upper_body, raw photo, best quality",
                         "(worst quality:2), (low quality:2), lowres, watermark")
    gen = PortraitGenerator(pipe, fuser=None)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"# bench_portrait_gpu: {name}, torch {torch.__version__}, {args.dtype}, {args.size} px, build+fuse {build:.1f} s")
    print(f"{'recipe':<28} {'batch':>5} {'s/portrait':>10} {'denoise s':>10} {'vae s':>8} {'peak GiB':>9}")
    gen._denoise(GenerationRequest(prompts, [0], args.size, args.size, 2, 7.0), StageTimes())  # warm-up
    for label, steps, guidance in (("LoRA: DPM-1S 40 steps CFG 7", 40, 7.0), ("FACT: 50 steps CFG 5", 50, 5.0)):
        steps = 2 if args.quick else steps
        for batch in (1, args.images):
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
                torch.cuda.synchronize()
            times = StageTimes()
            seeds = list(range(args.images))
            t = time.perf_counter()
            gen._denoise(GenerationRequest(prompts, seeds, args.size, args.size, steps, guidance, batch_size=batch), times)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            per = (time.perf_counter() - t) / len(seeds)
            peak = torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else float("nan")
            print(f"{label:<28} {batch:>5} {per:>10.3f} {times.denoising / len(seeds):>10.3f} "
                  f"{times.vae_decode / len(seeds):>8.3f} {peak:>9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
