"""``facechain tryon MODEL_PHOTO --person NAME [--garment-mask MASK.png] [--prompt "on a beach"] [--style S]``."""

from __future__ import annotations

import argparse


def register(sub, common) -> None:
    p = sub.add_parser(
        "tryon", parents=[common], help="virtual try-on: a trained person wearing the garment of a model photo",
        description="Virtual try-on (FaceChain paper, section 3.1): keep the garment of a model photo pixel for pixel "
                    "and redraw everything else (the person, the background from --prompt) as the trained person, "
                    "under OpenPose (bones + hands), Canny (body) and, when its models are there, depth-on-hands "
                    "ControlNets at strength 1.0; then strengthen the face with the two-stage template inpainting. "
                    "Saves OUT/NNNN.png (best first, parameters embedded) and OUT/tryon.json.",
    )
    p.add_argument("model_photo", metavar="MODEL_PHOTO", help="photo of a (real or virtual) model wearing the garment")
    p.add_argument("--person", metavar="NAME|DIR", help="trained identity (default: the newest identity)")
    g = p.add_argument_group("garment")
    g.add_argument("--garment-mask", metavar="MASK", help="black/white image of the photo's size, white = garment to keep "
                                                          "(default: found offline: person - head - skin - hands)")
    g.add_argument("--garment-segmenter", choices=["offline", "m2fp"],
                   help="how to find the garment without --garment-mask (default offline; m2fp: the paper's parser, ModelScope)")
    s = p.add_argument_group("scene and sampling")
    s.add_argument("--prompt", metavar="TEXT", help='the scene, e.g. "on a beach" (the background comes from it)')
    s.add_argument("--negative-prompt", metavar="TEXT", help="negative prompt (default: facechain's)")
    s.add_argument("--style", metavar="NAME|FILE", help="a facechain style whose prompt to use")
    s.add_argument("-n", "--num-images", type=int, metavar="N", help="try-on images, ranked by likeness (default 2)")
    s.add_argument("--seed", type=int, help="seed of the first image; image k uses seed + k (default 0)")
    s.add_argument("--steps", type=int, help="denoising steps (default 30)")
    s.add_argument("--guidance-scale", type=float, metavar="G", help="classifier-free guidance (default 7)")
    s.add_argument("--size", metavar="N|WxH", help="long side of the image SD redraws, or WxH to fit in (default 768); "
                                                   "outputs keep the photo's size")
    s.add_argument("--no-face-stage", dest="face_stage", action="store_const", const=False,
                   help="skip the face stage (two-stage template inpainting on the redrawn face)")
    m = p.add_argument_group("models")
    m.add_argument("--base-model", metavar="REF", help="base model (default: the identity's)")
    m.add_argument("--inpaint-model", metavar="REF", help="an SD inpainting model (9-channel UNet) for the redraw "
                                                          "(registry: sd15-inpainting; default: the base model)")
    m.add_argument("--openpose-controlnet", metavar="REF", help="OpenPose ControlNet (registry: openpose-controlnet)")
    m.add_argument("--canny-controlnet", metavar="REF", help="Canny ControlNet (registry: canny-controlnet)")
    m.add_argument("--depth-controlnet", metavar="REF", help="depth ControlNet (registry: depth-controlnet)")
    m.add_argument("--depth-estimator", metavar="REF", help="depth estimator (registry: depth-estimator)")
    m.add_argument("--depth", dest="depth", action="store_const", const=True,
                   help="require depth on the hands (download its models if needed); default: only when already present")
    m.add_argument("--no-depth", dest="depth", action="store_const", const=False, help="no depth control")
    d = p.add_argument_group("device")
    d.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    d.add_argument("--dtype", help="auto (fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16")
    p.add_argument("-o", "--output", metavar="DIR", help="output folder, created fresh (default: ./outputs/<time>-tryon-<photo>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("-c", "--config", metavar="FILE", help="YAML config file with a 'tryon:' section (flags win)")
    p.add_argument("--save-intermediates", action="store_const", const=True,
                   help="also write every stage's images (garment mask, control images, redraws) to OUT/steps/")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    p.set_defaults(func=run)


_OPTIONS = ("garment_mask", "garment_segmenter", "prompt", "negative_prompt", "style", "num_images", "seed", "steps",
            "guidance_scale", "size", "face_stage", "base_model", "inpaint_model", "openpose_controlnet",
            "canny_controlnet", "depth_controlnet", "depth_estimator", "depth", "device", "dtype", "config", "output",
            "overwrite", "quiet", "save_intermediates")


def run(args: argparse.Namespace) -> int:
    from ..apps.tryon.api import tryon

    result = tryon(args.model_photo, args.person, **{k: getattr(args, k) for k in _OPTIONS})
    if args.json:
        print(result.summary_path.read_text(encoding="utf-8"))
        return 0
    for p in result:
        sim = "n/a" if p.similarity is None else f"{p.similarity:.3f}"
        print(f"{p.path}  similarity {sim}  seed {p.seed}")
    g = result.garment
    face = "n/a" if g["share_of_face_box"] is None else f"{g['share_of_face_box']:.1%}"
    person = "n/a" if g["share_of_person"] is None else f"{g['share_of_person']:.1%}"
    print(f"garment ({g['method']}): {g['share_of_image']:.1%} of the photo, {person} of the person, {face} of the face box")
    skipped = [f"{k} ({v.removeprefix('skipped: ')})" for k, v in result.steps.items() if v.startswith("skipped")]
    if skipped:
        print("skipped: " + "; ".join(skipped))
    print(f"summary: {result.summary_path}")
    return 0
