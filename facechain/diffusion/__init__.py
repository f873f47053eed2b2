"""Shared Stable Diffusion plumbing: device choice, model families (SD 1.5 / SDXL), text conditioning and loading base models through the model store."""
