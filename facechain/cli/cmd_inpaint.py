"""``facechain inpaint TEMPLATE --person NAME [--person NAME2 ...] [--face-index i ...]``
or ``facechain inpaint TEMPLATE --photo face.jpg [--photo face2.jpg] [--adapter-scale 0.55]`` (FACT, no training)."""

from __future__ import annotations

import argparse

from .. import options

#: Every flag of the verb is the same-named keyword of :func:`facechain.inpaint`.
INPAINT_OPTIONS = ("person", "photo", "face_index", "adapter", "adapter_scale", "style", "prompt", "negative_prompt",
                   "num_images", "seed", "steps", "guidance_scale", "size", "strength", "face_weight", "base_model",
                   "openpose_controlnet", "canny_controlnet", "device", "dtype", "min_face_size", "mask",
                   "seam_correction", "fusion", "save_intermediates", "output", "overwrite", "config", "quiet")


def register(sub, common) -> None:
    p = options.verb_parser(
        sub, common, "inpaint",
        help="put trained people into a template photo (two-stage inpainting)",
        description="Replace faces of a template photo by trained people, keeping its composition, lighting and "
                    "clothes (FaceChain paper, section 2.5). Faces are numbered left to right: see "
                    "'facechain faces TEMPLATE'. Without --face-index the N people replace the N largest faces, "
                    "left to right. With --photo (no training) the train-free FACT adapter draws the person of the "
                    "photos into one face instead of a trained face LoRA. Saves OUT/NNNN.png (best first), "
                    "OUT/portraits.json and OUT/contact_sheet.jpg.",
    )
    p.add_argument("template", help="the template photo")
    options.add(p, options.use("person", repeat=True, help="trained identity (name or folder); repeat for several "
                                                           "faces (default: the newest identity)"),
                "style",
                options.use("prompt", help="prompt text after the trigger word (with --style: replaces its prompt)"),
                "negative_prompt", "face_weight")
    options.add(p, options.use("photo", repeat=True, help="a photo of the person (instead of --person; FACT adapter, "
                                                          "no training); repeat for several photos of the same "
                                                          "person; replaces one face"),
                "adapter", "adapter_scale", group="train-free identity (FACT face adapter, instead of --person)")
    options.add(p, options.use("face_index", repeat=True), options.use("min_face_size", help="refuse template faces "
                "smaller than this, px (default 48)"), "mask", "seam_correction", "save_intermediates")
    options.add(p, options.use("num_images", help="candidates per face, ranked by similarity"),
                options.use("seed", help="seed of the first candidate; candidate k uses seed+k (default: random, "
                                         "recorded)"),
                options.use("steps", help="diffusion steps (default: the recipe's, 30)"),
                "guidance_scale",
                options.use("size", square=True, help="side of the square work crop SD sees, px (default: the base model's "
                                                   "native size, 512 for SD 1.5, 1024 for SDXL)"),
                "strength")
    options.add(p, options.use("base_model", help="base model, SD 1.5 or SDXL: folder, .safetensors or hub id "
                                                  "(default: the identity's)"),
                "openpose_controlnet", "canny_controlnet")
    options.add(p, "fusion")
    options.add(p, "device", "dtype")
    options.add(p, options.use("output", help="output folder (default: a new ./outputs/<time>-inpaint); an existing "
                                              "non-empty one is refused without --overwrite"),
                options.use("overwrite", help="replace an existing portraits folder"),
                options.use("config", help="YAML config file with an 'inpaint:' section (flags win)"), "quiet", "json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inpainting.api import inpaint
    from ..results import default_output_dir
    from .portraits_table import config_value, print_portraits

    keywords = {k: getattr(args, k) for k in INPAINT_OPTIONS}
    if keywords["output"] is None and config_value(args.config, "inpaint", "output") is None:
        keywords["output"] = default_output_dir("inpaint")
    result = inpaint(args.template, **keywords)
    print_portraits(result, args.json)
    return 0
