"""``facechain tryon MODEL_PHOTO --person NAME [--garment-mask MASK.png] [--prompt "on a beach"] [--style S]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import options


def register(sub, common) -> None:
    p = options.verb_parser(
        sub, common, "tryon", help="virtual try-on: a trained person wearing the garment of a model photo",
        description="Virtual try-on (FaceChain paper, section 3.1): keep the garment of a model photo pixel for pixel "
                    "and redraw everything else (the person, the background from --prompt) as the trained person, "
                    "under OpenPose (bones + hands), Canny (body) and, when its models are there, depth-on-hands "
                    "ControlNets at strength 1.0; then strengthen the face with the two-stage template inpainting. "
                    "Saves OUT/NNNN.png (best first, parameters embedded) and OUT/tryon.json.",
    )
    p.add_argument("model_photo", metavar="MODEL_PHOTO", help="photo of a (real or virtual) model wearing the garment")
    options.add(p, "person", "garment_mask", "garment_segmenter",
                options.use("prompt", help='the scene, e.g. "on a beach" (the background comes from it)'),
                "negative_prompt", "style", "num_images", "seed", "steps", "guidance_scale",
                options.use("size", help="long side of the image SD redraws, or WxH to fit in (default 768); outputs "
                                         "keep the photo's size"),
                "face_stage", "base_model", "inpaint_model", "openpose_controlnet", "canny_controlnet",
                "depth_controlnet", "depth_estimator", "depth", "device", "dtype", "output", "overwrite", "config",
                "save_intermediates", "quiet", "json")
    p.set_defaults(func=run)


_OPTIONS = ("garment_mask", "garment_segmenter", "prompt", "negative_prompt", "style", "num_images", "seed", "steps",
            "guidance_scale", "size", "face_stage", "base_model", "inpaint_model", "openpose_controlnet",
            "canny_controlnet", "depth_controlnet", "depth_estimator", "depth", "device", "dtype", "config", "output",
            "overwrite", "quiet", "save_intermediates")


def run(args: argparse.Namespace) -> int:
    import json

    from ..apps.tryon.api import tryon
    from ..results import default_output_dir

    values = {k: getattr(args, k) for k in _OPTIONS}
    if values["output"] is None:
        values["output"] = str(default_output_dir(f"tryon-{Path(args.model_photo).stem}"))
    result = tryon(args.model_photo, args.person, **values)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    for p in result:
        sim = "n/a" if p.similarity is None else f"{p.similarity:.3f}"
        print(f"{p.path}  similarity {sim}  seed {p.seed}")
    g = result.settings["garment"]
    face = "n/a" if g["share_of_face_box"] is None else f"{g['share_of_face_box']:.1%}"
    person = "n/a" if g["share_of_person"] is None else f"{g['share_of_person']:.1%}"
    print(f"garment ({g['method']}): {g['share_of_image']:.1%} of the photo, {person} of the person, {face} of the face box")
    skipped = [f"{k} ({v.removeprefix('skipped: ')})" for k, v in result.settings["steps"].items() if v.startswith("skipped")]
    if skipped:
        print("skipped: " + "; ".join(skipped))
    print(f"saved {len(result)} portrait(s) to {result.output_dir}")
    return 0
