"""Shared Stable Diffusion plumbing: device choice and loading base models through the model store."""
