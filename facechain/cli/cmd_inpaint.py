"""``facechain inpaint TEMPLATE --person NAME [--person NAME2 ...] [--face-index i ...] --output DIR``
or ``facechain inpaint TEMPLATE --photo face.jpg [--photo face2.jpg] [--adapter-scale 0.55]`` (FACT, no training)."""

from __future__ import annotations

import argparse


def register(sub, common) -> None:
    p = sub.add_parser(
        "inpaint", parents=[common],
        help="put trained people into a template photo (two-stage inpainting)",
        description="Replace faces of a template photo by trained people, keeping its composition, lighting and "
                    "clothes (FaceChain paper, section 2.5). Faces are numbered left to right: see "
                    "'facechain faces TEMPLATE'. Without --face-index the N people replace the N largest faces, "
                    "left to right. With --photo (no training) the train-free FACT adapter draws the person of the "
                    "photos into one face instead of a trained face LoRA.",
    )
    p.add_argument("template", help="the template photo")
    p.add_argument("--person", action="append", metavar="NAME",
                   help="trained identity (name or folder); repeat for several faces (default: newest identity)")
    p.add_argument("--photo", action="append", metavar="FILE",
                   help="photo of the person (instead of --person; FACT adapter, no training); repeat for several "
                        "photos of the same person (16 face tokens each); replaces one face")
    p.add_argument("--adapter", metavar="REF",
                   help="FACT adapter for --photo: registry name, folder or file (default: fact-adapter)")
    p.add_argument("--adapter-scale", type=float, metavar="F",
                   help="FACT adapter strength for --photo (default 0.55; 0 = base model)")
    p.add_argument("--face-index", action="append", type=int, metavar="I",
                   help="face to replace (left-to-right number); repeat, one per --person, in the same order")
    p.add_argument("-o", "--output", help="output folder (default: a new ./outputs/<time>-inpaint)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing portraits folder")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.add_argument("-c", "--config", dest="config_file", metavar="YAML", help="config file with an 'inpaint:' section")
    p.add_argument("-n", "--num-images", type=int, help="candidates per face, ranked by similarity (default 2)")
    p.add_argument("--seed", type=int, help="random seed (candidate k uses seed + k)")
    p.add_argument("--style", help="style whose prompt to use (name or YAML file)")
    p.add_argument("--prompt", help="extra prompt text after the trigger word")
    p.add_argument("--negative-prompt", help="negative prompt (default: facechain's)")
    p.add_argument("--strength", type=float, help="stage-2 denoising strength from the template latent (default 0.65)")
    p.add_argument("--steps", type=int, help="diffusion steps (default 30)")
    p.add_argument("--guidance-scale", type=float, help="classifier-free guidance (default 7)")
    p.add_argument("--size", "--resolution", dest="size", help="side of the square work crop SD sees (default 512)")
    p.add_argument("--face-weight", type=float, help="face LoRA weight (default 0.95)")
    p.add_argument("--base-model", help="base model: folder, .safetensors or hub id (default: the identity's)")
    p.add_argument("--openpose-controlnet", help="OpenPose ControlNet: folder or hub id (registry: openpose-controlnet)")
    p.add_argument("--canny-controlnet", help="Canny ControlNet: folder or hub id (registry: canny-controlnet)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", help="auto (default: fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16")
    p.add_argument("--min-face-size", type=int, help="refuse template faces smaller than this, px (default 48)")
    p.add_argument("--mask", choices=["head", "landmarks"],
                   help="region to redraw: head (face + hair, default) or landmarks (face hull + forehead; keeps the hair)")
    p.add_argument("--no-seam-correction", dest="seam_correction", action="store_const", const=False,
                   help="do not add the VAE round-trip error back when pasting (for comparison)")
    p.add_argument("--fusion", choices=["landmark", "modelscope", "none"], default="landmark", help="face fusion backend")
    p.add_argument("--no-fusion", dest="fusion", action="store_const", const="none",
                   help="skip face fusion after the two stages")
    p.add_argument("--save-intermediates", action="store_true",
                   help="also write every stage's images (crops, masks, control images, candidates)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inpainting.api import inpaint
    from ..results import default_output_dir

    result = inpaint(
        args.template, args.person, photo=args.photo, adapter=args.adapter, adapter_scale=args.adapter_scale,
        face_index=args.face_index, output=args.output or str(default_output_dir("inpaint")), config=args.config_file,
        num_images=args.num_images if args.num_images is not None else 4, seed=args.seed, style=args.style,
        prompt=args.prompt, negative_prompt=args.negative_prompt, strength=args.strength, steps=args.steps,
        guidance_scale=args.guidance_scale, size=args.size, face_weight=args.face_weight,
        base_model=args.base_model, openpose_controlnet=args.openpose_controlnet,
        canny_controlnet=args.canny_controlnet, device=args.device or "auto", dtype=args.dtype or "auto",
        min_face_size=args.min_face_size, mask=args.mask, seam_correction=args.seam_correction, fusion=args.fusion,
        save_intermediates=args.save_intermediates, overwrite=args.overwrite, quiet=args.quiet,
    )
    for p in result:
        sim = "n/a" if p.similarity is None else f"{p.similarity:.3f}"
        faces = ", ".join(f"face {f['face_index']}={f['person']}" for f in p.faces)
        print(f"{p.path}  similarity {sim}  ({faces})")
    print(f"saved {len(result)} portrait(s) to {result.output_dir}")
    return 0
