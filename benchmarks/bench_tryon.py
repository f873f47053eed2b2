"""Seconds per stage of ``facechain tryon`` on the full-size SD 1.5 architecture (random weights).

Run (one heavy job at a time on a shared machine)::

    flock /tmp/facechain-heavy.lock python benchmarks/bench_tryon.py [--size 256] [--steps 2]

Builds SD 1.5's UNet (860 M parameters), VAE, CLIP text encoder and full-size OpenPose, Canny and
depth ControlNets, plus Depth Anything V2 small's architecture, all with *random weights* (no
download is possible here), and runs the whole try-on on a real model photo (../shared/faces, a
half-body suit with the arms crossed, 910x1137) with a random rank-4 face LoRA: one image,
``--steps`` steps, the redraw at ``--size`` px (long side) and the face stage on a ``--size`` px
face crop. The pictures are noise; the times are what the real models cost on this CPU. Two
variants: without depth (the default when its models are not downloaded) and with depth on the
hands. Stage times are the pipeline's own (``outcome.timings``).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402

from bench_inpaint import full_size_pipelines, random_face_lora  # noqa: E402
from facechain.apps.tryon import TryOnConfig, TryOnPipeline, tryon  # noqa: E402
from facechain.inpainting.pipeline import TemplatePortraitPipeline  # noqa: E402
from facechain.perception import get_analyzer  # noqa: E402

FACES = Path(os.environ.get("FACECHAIN_TEST_FACES", REPO.parent / "shared" / "faces"))
PHOTO = FACES / "obama/obama_2012_official_portrait.jpg"
ROWS = [("face", "face detection (dlib, <= 1280 px)"), ("body_pose", "body pose (BlazePose)"),
        ("hands", "hands (palm detector + landmarks)"), ("segmentation", "garment mask (selfie seg., skin, clean)"),
        ("controls", "controls (OpenPose+hands, Canny, depth)"), ("lora", "face LoRA fuse/unfuse (redraw)"),
        ("inpainting", "redraw (multi-ControlNet inpaint, strength 1)"), ("compose", "garment back in (photo size)"),
        ("face_stage", "face stage (section 2.5, both stages)"), ("rank", "ranking")]


def full_size_depth():
    """A full-size depth ControlNet and Depth Anything V2 small (random weights) behind DepthEstimator."""
    from diffusers import ControlNetModel, UNet2DConditionModel
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    from facechain.apps.tryon.controls import DepthEstimator

    try:
        from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil as Processor
    except ImportError:
        from transformers import DPTImageProcessor as Processor

    torch.manual_seed(1)
    net = ControlNetModel.from_unet(UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)).eval()
    backbone = Dinov2Config(image_size=518, hidden_size=384, num_attention_heads=6, out_indices=[9, 10, 11, 12],
                            apply_layernorm=True, reshape_hidden_states=False)
    model = DepthAnythingForDepthEstimation(DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=384,
                                                                neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64))
    processor = Processor(size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
                          image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    return net, DepthEstimator(model.eval(), processor)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="long side of the redraw and side of the face crop (px)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--skip-depth", action="store_true", help="only the variant without depth")
    args = ap.parse_args()
    os.environ.setdefault("FACECHAIN_OFFLINE", "1")
    logging.getLogger("facechain").setLevel(logging.ERROR)  # random models: "stage 1 drew no face" every run
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["FACECHAIN_HOME"] = str(tmp / "home")
        t = time.perf_counter()
        t2i, inp = full_size_pipelines()
        depth_net, depth_estimator = (None, None) if args.skip_depth else full_size_depth()
        build = time.perf_counter() - t
        ident = random_face_lora(t2i.unet, tmp / "bench-id", PHOTO)
        analyzer = get_analyzer("hog")
        cfg = TryOnConfig(size=args.size, steps=args.steps, num_images=1, face_size=args.size // 8 * 8)
        face_stage = TemplatePortraitPipeline(t2i, inp, analyzer)
        variants = [("no depth", dict(depth_unavailable="not loaded"))]
        if not args.skip_depth:
            variants.append(("depth on hands", dict(depth_controlnet=depth_net, depth_estimator=depth_estimator)))
        results = []
        for label, extra in variants:
            pipe = TryOnPipeline.from_pipe(face_stage, config=cfg, **extra)
            gc.collect()
            t = time.perf_counter()
            result = tryon(PHOTO, ident.path, output=tmp / f"out-{len(results)}", pipeline=pipe, quiet=True)
            results.append((label, time.perf_counter() - t, result.outcome))
        out = results[0][2]
        print(f"\nvirtual try-on, full-size SD 1.5 architecture (random weights), fp32 CPU, torch threads "
              f"{torch.get_num_threads()}; model photo {PHOTO.name} {out.inputs.photo.shape[1]}x{out.inputs.photo.shape[0]}; "
              f"redraw {out.work_size[0]}x{out.work_size[1]}, face crop {cfg.face_resolution} px, {args.steps} steps, 1 image")
        print(f"build (models from config, not timed below): {build:.1f} s; load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} CPUs (a shared machine stretches every figure)")
        print(f"{'stage':<48}" + "".join(f"{label:>16}" for label, _, _ in results))
        for key, name in ROWS:
            print(f"{name:<48}" + "".join(f"{o.timings.get(key, 0.0):>15.2f}s" for _, _, o in results))
        print(f"{'total (tryon() call incl. PNG + JSON)':<48}" + "".join(f"{total:>15.2f}s" for _, total, _ in results))
        print("steps: " + "; ".join(f"{label}: depth {o.steps['depth']}" for label, _, o in results))


if __name__ == "__main__":
    main()
