"""Applications of the FaceChain pipeline (paper section 3): virtual try-on, talking head."""
