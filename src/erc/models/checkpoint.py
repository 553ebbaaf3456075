"""The model checkpoint, models/<dataset>.pt: what it holds."""
CHECKPOINT_KEYS = ("config", "runs", "sources", "mrl", "mkd")
