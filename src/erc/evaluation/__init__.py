"""Metrics, per-epoch records and the evaluate stage's work (the only reader of test labels)."""
