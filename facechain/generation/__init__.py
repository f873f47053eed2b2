"""Text-to-image generation with face and style LoRAs (paper section 2.3)."""
