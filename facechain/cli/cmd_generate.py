"""``facechain generate`` (alias ``infer``): portraits of a trained identity in a style."""

from __future__ import annotations

import argparse
import sys


def register(sub, common) -> None:
    p = sub.add_parser(
        "generate", aliases=["infer"], parents=[common], help="generate portraits of a trained identity in a style",
        description="Generate portraits of a trained identity in a style: face + style LoRA on the base model, "
                    "optional pose control, face fusion with the template face, ranking by likeness. "
                    "Saves OUT/NNNN.png (best first, parameters embedded), OUT/portraits.json and OUT/contact_sheet.jpg.",
    )
    g = p.add_argument_group("who and which look")
    g.add_argument("--person", metavar="NAME|DIR", help="identity name or folder (default: the newest identity)")
    g.add_argument("--style", metavar="NAME|FILE", help="style name (see 'facechain styles') or a style .yaml file (default: business_suit)")
    g.add_argument("--prompt", "--style-prompt", dest="prompt", metavar="TEXT", help="ad-hoc style prompt (or replace the --style's prompt); {trigger} marks the identity")
    g.add_argument("--style-lora", metavar="FILE", help="style LoRA .safetensors (ad hoc, or replace the --style's LoRA)")
    g.add_argument("--style-weight", type=float, metavar="W", help="style LoRA weight (default: the style's, else 0.25)")
    g.add_argument("--face-weight", type=float, metavar="W", help="face LoRA weight (default: the style's, else 0.95)")
    g.add_argument("--face-lora", metavar="FILE", help="use this face LoRA .safetensors instead of the identity's")
    g.add_argument("--negative-prompt", metavar="TEXT", help="replace the style's negative prompt")
    f = p.add_argument_group("train-free identity (FACT face adapter, instead of --person)")
    f.add_argument("--photo", action="append", metavar="IMAGE",
                   help="a photo of the person (repeat for several photos of one person); no training needed")
    f.add_argument("--adapter", metavar="REF", help="FACT adapter folder or hub id (default: the registry's fact-adapter)")
    f.add_argument("--adapter-scale", type=float, metavar="S", help="identity fidelity (1) vs freedom (0) (default 0.5)")
    s = p.add_argument_group("sampling")
    s.add_argument("-n", "--num-images", type=int, metavar="N", help="portraits to generate (default 4)")
    s.add_argument("--batch-size", type=int, metavar="B", help="images per denoising batch (default 1; more is faster on big GPUs)")
    s.add_argument("--seed", type=int, help="seed of the first image; image i uses seed+i (default: random, recorded)")
    s.add_argument("--steps", type=int, help="denoising steps (default: the style's, 40)")
    s.add_argument("--guidance-scale", "--guidance", dest="guidance_scale", type=float, help="classifier-free guidance scale (default: the style's, 7.0)")
    s.add_argument("--size", metavar="512|WxH", help="image size, e.g. 512 or 512x768 (default: the style's)")
    s.add_argument("--sampler", help="default, ddim, pndm, euler, euler_a, heun, lms, dpm++2m, dpm++2m_karras, unipc")
    m = p.add_argument_group("models")
    m.add_argument("--base-model", metavar="REF", help="base model folder, .safetensors file or hub id (overrides the style's)")
    m.add_argument("--openpose-controlnet", metavar="REF", help="OpenPose ControlNet for --pose (default: lllyasviel/control_v11p_sd15_openpose)")
    m.add_argument("--no-fuse-lora", dest="fuse_lora", action="store_const", const=False,
                   help="keep LoRAs as live adapters instead of fusing them into the weights (slower, same output)")
    m.add_argument("--pose", metavar="IMAGE", help="copy the pose of this photo (or use this OpenPose skeleton) via ControlNet")
    m.add_argument("--pose-strength", type=float, metavar="S", help="ControlNet conditioning scale (default 1.0)")
    q = p.add_argument_group("post-processing")
    q.add_argument("--fusion", choices=["landmark", "modelscope", "none"], help="face fusion backend (default landmark: offline)")
    q.add_argument("--no-fusion", dest="fusion", action="store_const", const="none", help="skip face fusion")
    q.add_argument("--fusion-strength", type=float, metavar="S", help="face fusion strength 0..1 (default 1.0)")
    q.add_argument("--strict", action="store_const", const=True,
                   help="drop portraits without exactly one reasonably sized face (error if none is left)")
    q.add_argument("--min-face-fraction", type=float, metavar="F", help="smallest face, as a share of the image side (default 0.15)")
    d = p.add_argument_group("device and memory")
    d.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    d.add_argument("--dtype", help="auto (fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16")
    d.add_argument("--cpu-offload", action="store_const", const=True, help="keep models on the CPU until used (small GPUs)")
    d.add_argument("--vae-tiling", action="store_const", const=True, help="decode large images tile by tile (less memory)")
    d.add_argument("--vae-slicing", action="store_const", const=True, help="decode a batch one image at a time (less memory)")
    p.add_argument("-o", "--output", metavar="DIR", help="output folder (default: a new ./outputs/<time>-<style>); never overwritten")
    p.add_argument("-c", "--config", metavar="FILE", help="YAML config file with a 'generate:' section (flags win)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing portraits folder")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.add_argument("--json", action="store_true", help="print the run's metadata as JSON")
    p.set_defaults(func=run)


_OPTIONS = ("person", "photo", "adapter", "adapter_scale", "style", "prompt", "style_lora", "style_weight", "face_weight", "face_lora", "negative_prompt",
            "num_images", "batch_size", "seed", "steps", "guidance_scale", "size", "sampler", "base_model", "openpose_controlnet",
            "fuse_lora", "pose", "pose_strength", "fusion", "fusion_strength", "strict", "min_face_fraction", "device", "dtype",
            "cpu_offload", "vae_tiling", "vae_slicing", "output", "overwrite")


def run(args: argparse.Namespace) -> int:
    import json

    from ..config import load_config
    from ..generation.api import generate
    from ..generation.config import DEFAULT_STYLE, GenerateConfig
    from ..results import default_output_dir

    options = {k: getattr(args, k) for k in _OPTIONS if getattr(args, k) is not None}
    if "output" not in options:
        cfg = load_config(GenerateConfig, "generate", args.config, {})
        if cfg.output is None:
            style_name = options.get("style") or cfg.style or ("custom" if (options.get("prompt") or cfg.prompt) else DEFAULT_STYLE)
            options["output"] = str(default_output_dir(str(style_name).rsplit("/", 1)[-1].removesuffix(".yaml")))
    results = generate(config=args.config, quiet=args.quiet, **options)
    for w in results.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.json:
        print(json.dumps({**results.to_json(), "output": str(results.output_dir)}, indent=2))
        return 0
    print(f"{'FILE':<10} {'SIMILARITY':>10}  {'SEED':>10}  STATUS")
    for p in results:
        sim = "-" if p.similarity is None else f"{p.similarity:.3f}"
        status = "ok" if p.ok else f"flagged: {p.reason}"
        print(f"{p.metadata.get('file', ''):<10} {sim:>10}  {str(p.seed):>10}  {status}")
    per = results.timings.get("per_image", {})
    if per:
        print(f"time per image: {per.get('total', 0):.2f} s (denoising {per.get('denoising', 0):.2f} s)")
    print(f"saved {len(results)} portrait(s) to {results.output_dir}")
    return 0
