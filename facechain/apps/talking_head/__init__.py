"""Talking head (paper section 3.2)."""
