"""MGLRA, its layers, the nested heads (MRL), checkpoints, eval passes and serving (predict.py)."""
