"""diffusers UNet module paths -> the original LDM / SGM names (``input_blocks.4.1``, ``middle_block.1``).

Stability's original code, A1111, ComfyUI and kohya's SDXL LoRAs number the UNet's layers as one
flat list per half (``input_blocks`` / ``output_blocks``) where diffusers nests them
(``down_blocks.1.attentions.0``). The flat index depends on ``layers_per_block``: every down block
holds ``layers_per_block`` layers plus a downsampler slot, every up block ``layers_per_block + 1``
layers; ``input_blocks.0`` is ``conv_in``. Inside a layer, slot 0 is the ResNet (whose parts have
LDM names too), slot 1 the attention, and the up block's last layer carries its upsampler in the
next free slot. Used by the kohya exporter (LoRA names) and by the tests' single-file checkpoints.
"""

from __future__ import annotations

from typing import Sequence

#: ResNet parts: diffusers name -> LDM name (inside ``input_blocks.N.0`` etc.).
RESNET_PARTS = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
                ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection"))

Prefixes = list[tuple[str, str, tuple]]  # (diffusers module prefix, LDM prefix, renames inside it)


def unet_prefixes(block_count: int, layers_per_block: int, up_block_types: Sequence[str],
                  controlnet: bool = False) -> Prefixes:
    """The UNet's (or a ControlNet's encoder half's) diffusers -> LDM module prefixes.

    ``up_block_types`` decides the upsampler's slot (after the attention in a cross-attention block);
    a ControlNet has no up blocks and no output convolution, so with ``controlnet`` they are left out.
    """
    lpb = layers_per_block
    out: Prefixes = [
        ("time_embedding.linear_1", "time_embed.0", ()), ("time_embedding.linear_2", "time_embed.2", ()),
        ("add_embedding.linear_1", "label_emb.0.0", ()), ("add_embedding.linear_2", "label_emb.0.2", ()),
        ("conv_in", "input_blocks.0.0", ()),
        ("mid_block.resnets.0", "middle_block.0", RESNET_PARTS), ("mid_block.attentions.0", "middle_block.1", ()),
        ("mid_block.resnets.1", "middle_block.2", RESNET_PARTS),
    ]
    for i in range(block_count):
        for j in range(lpb):
            idx = 1 + i * (lpb + 1) + j
            out += [(f"down_blocks.{i}.resnets.{j}", f"input_blocks.{idx}.0", RESNET_PARTS),
                    (f"down_blocks.{i}.attentions.{j}", f"input_blocks.{idx}.1", ())]
        if i < block_count - 1:
            out.append((f"down_blocks.{i}.downsamplers.0.conv", f"input_blocks.{(i + 1) * (lpb + 1)}.0.op", ()))
    if controlnet:
        return out
    out += [("conv_norm_out", "out.0", ()), ("conv_out", "out.2", ())]
    for i, kind in enumerate(up_block_types):
        for j in range(lpb + 1):
            idx = i * (lpb + 1) + j
            out += [(f"up_blocks.{i}.resnets.{j}", f"output_blocks.{idx}.0", RESNET_PARTS),
                    (f"up_blocks.{i}.attentions.{j}", f"output_blocks.{idx}.1", ())]
        if i < block_count - 1:
            slot = 2 if "CrossAttn" in kind else 1
            out.append((f"up_blocks.{i}.upsamplers.0.conv", f"output_blocks.{i * (lpb + 1) + lpb}.{slot}.conv", ()))
    return out


def ldm_path(path: str, prefixes: Prefixes) -> str | None:
    """The LDM name of a diffusers module or parameter path (``None``: no LDM counterpart in ``prefixes``)."""
    for src, dst, inner in sorted(prefixes, key=lambda p: -len(p[0])):  # longest prefix first
        if path == src:
            return dst
        if path.startswith(src + "."):
            rest = path[len(src) + 1:]
            for a, b in inner:
                if rest == a or rest.startswith(a + "."):
                    rest = b + rest[len(a):]
                    break
            return f"{dst}.{rest}"
    return None
