"""``facechain generate`` (alias ``infer``): portraits of a trained identity in a style."""

from __future__ import annotations

import argparse

from .. import options

#: Every flag of the verb is the same-named keyword of :func:`facechain.generate`.
GENERATE_OPTIONS = ("person", "style", "photo", "prompt", "negative_prompt", "style_lora", "style_weight",
                    "face_weight", "face_lora", "adapter", "adapter_scale", "num_images", "batch_size", "seed", "steps",
                    "guidance_scale", "size", "sampler", "base_model", "openpose_controlnet", "fuse_lora", "pose",
                    "pose_strength", "fusion", "fusion_strength", "strict", "min_face_fraction", "device", "dtype",
                    "cpu_offload", "vae_tiling", "vae_slicing", "output", "overwrite", "config", "quiet")


def register(sub, common) -> None:
    p = options.verb_parser(
        sub, common, "generate", aliases=["infer"], help="generate portraits of a trained identity in a style",
        description="Generate portraits of a trained identity in a style: face + style LoRA on the base model, "
                    "optional pose control, face fusion with the template face, ranking by likeness. "
                    "Saves OUT/NNNN.png (best first, parameters embedded), OUT/portraits.json and OUT/contact_sheet.jpg.",
    )
    options.add(p, "person",
                options.use("style", help="style name (see 'facechain styles') or a style .yaml file (default: "
                                          "business_suit, or an ad-hoc style with --prompt)"),
                options.use("prompt", help="ad-hoc style prompt, or replaces the --style's prompt; {trigger} marks "
                                           "where the identity's trigger word goes (default: in front)"),
                "negative_prompt", "style_lora", "style_weight", "face_weight", "face_lora")
    options.add(p, options.use("photo", repeat=True), "adapter", "adapter_scale",
                group="train-free identity (FACT face adapter, instead of --person)")
    options.add(p, options.use("num_images", help="portraits to make, best first"),
                options.use("batch_size", help="images per denoising batch (default 1; more is faster on big GPUs)"),
                options.use("seed", help="seed of the first image; image i uses seed+i (default: random, recorded)"),
                options.use("steps", help="denoising steps (default: the style's, else 40)"),
                options.use("guidance_scale", help="classifier-free guidance scale (default: the style's, else 7)"),
                options.use("size", help="image size: N or WIDTHxHEIGHT, e.g. 512 or 512x768, multiples of 8 "
                                         "(default: the style's)"),
                "sampler")
    options.add(p, "base_model", "openpose_controlnet", "fuse_lora", "pose", "pose_strength")
    options.add(p, "fusion", "fusion_strength", "strict", "min_face_fraction")
    options.add(p, "device", "dtype", "cpu_offload", "vae_tiling", "vae_slicing")
    options.add(p, options.use("output", help="output folder (default: a new ./outputs/<time>-<style>); an existing "
                                              "non-empty one is refused without --overwrite"),
                options.use("overwrite", help="replace an existing portraits folder"),
                options.use("config", help="YAML config file with a 'generate:' section (flags win)"), "quiet", "json")
    p.set_defaults(func=run)


def default_output(args: argparse.Namespace):
    """A fresh ``./outputs/<time>-<style>`` unless ``--output`` or the config file names a folder."""
    from ..generation.config import DEFAULT_STYLE
    from ..results import default_output_dir
    from .portraits_table import config_value

    if config_value(args.config, "generate", "output") is not None:
        return None  # the config file's folder
    style = args.style or config_value(args.config, "generate", "style")
    if style is None:
        prompt = args.prompt or config_value(args.config, "generate", "prompt")
        label = "custom" if prompt else DEFAULT_STYLE
    else:
        label = str(style).replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml")
    return default_output_dir(label)


def run(args: argparse.Namespace) -> int:
    from ..generation.api import generate
    from .portraits_table import print_portraits

    keywords = {k: getattr(args, k) for k in GENERATE_OPTIONS}
    if keywords["output"] is None:
        keywords["output"] = default_output(args)
    result = generate(**keywords)
    print_portraits(result, args.json)
    return 0
