"""Multimodal emotion recognition in conversation: MGLRA with Matryoshka representations (MRL / MRL-E)
and modality-wise knowledge distillation (MKD). The stage scripts in ``src/`` are thin wrappers over this package."""
