"""VAE encode/decode that survive half precision.

Some VAEs (SD 1.5's own at large sizes, several community VAEs baked into civitai checkpoints)
overflow in fp16: a decode returns NaN/inf and the image comes out black. diffusers upcasts only
where a config says ``force_upcast``; SD 1.5 pipelines never do. These helpers run the VAE in its
own dtype (fast, little memory) and, only when that yields a non-finite value, run the same call
again on an fp32 copy of the VAE. An SDXL VAE whose config says ``force_upcast`` (the stock one,
which always overflows in fp16) goes to the fp32 copy straight away (``family="sdxl"``). The copy
is made once per VAE and kept beside it (weakly referenced), and the VAE given is never modified,
so another thread using it is unaffected.
"""

from __future__ import annotations

import copy
import logging
import threading
import weakref

import torch

log = logging.getLogger(__name__)

_HALF = (torch.float16, torch.bfloat16)
_FP32_COPIES: "weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def fp32_copy(vae):
    """An fp32 twin of ``vae`` on the same device (made once, reused while ``vae`` lives)."""
    if next(vae.parameters()).dtype == torch.float32:
        return vae
    with _LOCK:
        twin = _FP32_COPIES.get(vae)
        if twin is None:
            twin = copy.deepcopy(vae).to(torch.float32)
            twin.requires_grad_(False)
            _FP32_COPIES[vae] = twin
        return twin


def vae_dtype(vae, dtype: torch.dtype, family: str | None) -> torch.dtype:
    """``dtype`` to run a VAE in, except fp32 where fp16 is known to overflow: an SDXL VAE whose config
    says ``force_upcast`` (the stock one gives NaNs in fp16 every time, so the retry below would
    always run; the fp16-fixed VAE clears the flag). Only SDXL honours the flag, as in diffusers:
    ``AutoencoderKL`` defaults it to True, so SD 1.5 configs, which never set it, carry it too.
    bf16 has fp32's range and stays as it is."""
    if dtype == torch.float16 and family == "sdxl" and getattr(vae.config, "force_upcast", False):
        return torch.float32
    return dtype


def _known_safe(vae, family: str | None):
    """``vae``, or its fp32 twin when fp16 is known to overflow (:func:`vae_dtype`): then the call runs
    in fp32 straight away instead of failing once and being retried."""
    dtype = next(vae.parameters()).dtype
    return fp32_copy(vae) if vae_dtype(vae, dtype, family) != dtype else vae


def _finite(*tensors: torch.Tensor) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _factors(vae) -> tuple[float, float]:
    scaling = float(getattr(vae.config, "scaling_factor", 0.18215) or 0.18215)
    shift = getattr(vae.config, "shift_factor", None)
    return scaling, float(shift) if shift is not None else 0.0


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor, family: str | None = None) -> torch.Tensor:
    """Decode UNet-scale latents (what ``output_type="latent"`` returns) into images in [-1, 1].

    Returns a float32 ``(B, 3, H, W)`` tensor on the VAE's device. Decodes in the VAE's dtype; if
    that gives NaN/inf (fp16 overflow), decodes again in fp32 and logs it once per call.
    """
    scaling, shift = _factors(vae)
    z = latents / scaling + shift
    vae = _known_safe(vae, family)
    param = next(vae.parameters())
    image = vae.decode(z.to(param.device, param.dtype), return_dict=False)[0]
    if param.dtype in _HALF and not _finite(image):
        log.info("VAE decode overflowed in %s; decoding again in fp32", str(param.dtype).replace("torch.", ""))
        image = fp32_copy(vae).decode(z.to(param.device, torch.float32), return_dict=False)[0]
    return image.float()


@torch.no_grad()
def encode_posterior(vae, pixels: torch.Tensor, family: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (float32) of the VAE's latent distribution for ``(B, 3, H, W)`` pixels in [-1, 1].

    Runs in the VAE's dtype; again in fp32 when that gives a non-finite value. Unscaled: multiply
    a sample by the scaling factor (after subtracting the shift) before it goes to the UNet.
    """
    vae = _known_safe(vae, family)
    param = next(vae.parameters())
    dist = vae.encode(pixels.to(param.device, param.dtype)).latent_dist
    mean, std = dist.mean, dist.std
    if param.dtype in _HALF and not _finite(mean, std):
        log.info("VAE encode overflowed in %s; encoding again in fp32", str(param.dtype).replace("torch.", ""))
        dist = fp32_copy(vae).encode(pixels.to(param.device, torch.float32)).latent_dist
        mean, std = dist.mean, dist.std
    return mean.float(), std.float()


@torch.no_grad()
def round_trip(vae, pixels: torch.Tensor, family: str | None = None) -> torch.Tensor:
    """decode(encode(pixels)) through the posterior mean, float32 in [-1, 1]: what the VAE keeps of an image.

    An SDXL VAE whose config says ``force_upcast`` (it overflows in fp16) runs on its fp32 twin, as
    the diffusers SDXL pipelines do (:func:`vae_dtype`); any other runs in its own dtype, again in
    fp32 on a non-finite result.
    """
    mean, _ = encode_posterior(vae, pixels, family)
    scaling, shift = _factors(vae)
    return decode_latents(vae, (mean - shift) * scaling, family)  # at UNet scale, which decode_latents undoes
