"""Audio and text features: the extract_features stage's work."""
