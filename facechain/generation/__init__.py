"""Text-to-image generation with face and style LoRAs (paper sections 2.3-2.4).

* :mod:`.api` – :func:`generate` (the ``facechain generate`` verb): options -> plan -> pipelines -> portraits;
* :mod:`.portrait` – :class:`PortraitGenerator`, the paper's chain in one call
  (prompt -> denoise with fused LoRAs (+ pose ControlNet) -> fuse face -> rank);
* :mod:`.prompt` – trigger word + identity tags + style prompt;
* :mod:`.lora` – named adapters with weights, fused (shared with inpainting);
* :mod:`.pipeline_cache` – one pipeline per process, switching LoRA sets by unfusing;
* :mod:`.samplers` – sampler names -> diffusers schedulers;
* :mod:`.results` – :class:`Portrait` / :class:`PortraitSet` with ``.save()`` / ``.show()``.

Heavy imports happen in those modules, not here (``lora`` is imported by other stages).
"""
